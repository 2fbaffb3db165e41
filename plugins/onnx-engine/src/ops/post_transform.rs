//! The `post_transform` of the ONNX-ML classifiers: how raw class scores become the
//! scores the operator outputs, with onnxruntime's formulas (single precision).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "NONE" => Self::None,
            "SOFTMAX" => Self::Softmax,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => return Err(format!("unknown post_transform {other:?}")),
        })
    }

    /// Transforms one row of two or more class scores in place.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Logistic => row.iter_mut().for_each(|x| *x = logistic(*x)),
            Self::Probit => row.iter_mut().for_each(|x| *x = probit(*x)),
            Self::Softmax => softmax(row, false),
            Self::SoftmaxZero => softmax(row, true),
        }
    }
}

/// The logistic function, computed on `-|x|` so it never overflows.
pub fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// `√2 · erfinv(2p − 1)`, with Winitzki's approximation of erfinv (as onnxruntime).
pub fn probit(p: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * p - 1.0)
}

fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let l = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * l;
    let v2 = (1.0 / 0.147) * l;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}

/// Softmax of a row; with `keep_zeros`, exact zeros stay zero and do not count.
fn softmax(row: &mut [f32], keep_zeros: bool) {
    let max = row.iter().copied().fold(-f32::MAX, |m, x| if x > m { x } else { m });
    let mut sum = 0.0;
    for x in row.iter_mut() {
        if keep_zeros && x.abs() <= 1e-7 {
            *x *= (-max).exp();
        } else {
            *x = (*x - max).exp();
            sum += *x;
        }
    }
    row.iter_mut().for_each(|x| *x /= sum);
}
