//! Matrix products and reductions along an axis: `MatMul`, `Gemm`, `Softmax`,
//! `ArgMax`/`ArgMin`, and the `Reduce*` family. Floats are computed in double precision
//! and rounded to the tensor's type at the end.

use super::{Kernel, NodeSpec, required};
use crate::tensor::{Data, Strings, Tensor, resolve_axis};

/// Turns computed doubles back into a tensor's element type.
type FromDoubles = fn(Vec<f64>) -> Data;

/// A float or double tensor's elements as doubles, and a way back to its type.
fn floats(t: &Tensor) -> Result<(Vec<f64>, FromDoubles), String> {
    match &t.data {
        Data::F32(v) => Ok((v.iter().map(|&x| f64::from(x)).collect(), |v| {
            Data::F32(v.into_iter().map(|x| x as f32).collect())
        })),
        Data::F64(v) => Ok((v.clone(), Data::F64)),
        other => Err(format!("expected float or double, got {}", other.dtype().name())),
    }
}

/// `a` (`m × k`, row-major) times `b` (`k × n`), optionally transposed as stored.
fn product(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize), trans_a: bool, trans_b: bool) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = if trans_a { a[p * m + i] } else { a[i * k + p] };
            // One-hot features are mostly zeros; trained weights are finite, so skipping
            // them changes nothing.
            if x == 0.0 {
                continue;
            }
            let row = &mut out[i * n..(i + 1) * n];
            for (j, cell) in row.iter_mut().enumerate() {
                *cell += x * if trans_b { b[j * k + p] } else { b[p * n + j] };
            }
        }
    }
    out
}

pub struct MatMul;

impl Kernel for MatMul {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let (av, back) = floats(a)?;
        let (bv, _) = floats(b)?;
        let k = *a.shape.last().ok_or("MatMul of a scalar")?;
        let (b_rows, n) = match b.shape.as_slice() {
            [k] => (*k, 1),
            [k, n] => (*k, *n),
            _ => {
                return Err(format!("MatMul by a tensor of shape {:?} (only matrices and vectors)", b.shape));
            }
        };
        if b_rows != k {
            return Err(format!("MatMul of {:?} by {:?}", a.shape, b.shape));
        }
        let m = a.len() / k.max(1);
        let mut shape = a.shape[..a.shape.len() - 1].to_vec();
        if b.shape.len() == 2 {
            shape.push(n);
        }
        let data = back(product(&av, &bv, (m, k, n), false, false));
        Ok(vec![Tensor::new(shape, data)?])
    }
}

pub struct Gemm {
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
}

impl Gemm {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        let a = &node.attrs;
        Self {
            alpha: f64::from(a.float("alpha", 1.0)),
            beta: f64::from(a.float("beta", 1.0)),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        }
    }
}

impl Kernel for Gemm {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let (a, b) = (required(inputs, 0)?, required(inputs, 1)?);
        let ([ar, ac], [br, bc]) = match (a.shape.as_slice(), b.shape.as_slice()) {
            (&[ar, ac], &[br, bc]) => ([ar, ac], [br, bc]),
            (a, b) => return Err(format!("Gemm takes matrices, not {a:?} and {b:?}")),
        };
        let (m, k) = if self.trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if self.trans_b { (bc, br) } else { (br, bc) };
        if k != kb {
            return Err(format!("Gemm of {:?} by {:?}", a.shape, b.shape));
        }
        let (av, back) = floats(a)?;
        let (bv, _) = floats(b)?;
        let mut out = product(&av, &bv, (m, k, n), self.trans_a, self.trans_b);
        out.iter_mut().for_each(|x| *x *= self.alpha);
        if let Some(c) = inputs.get(2).copied().flatten() {
            let (cv, _) = floats(c)?;
            let index = crate::tensor::broadcast_index(&c.shape, &[m, n]);
            if crate::tensor::broadcast_shape(&c.shape, &[m, n])? != [m, n] {
                return Err(format!("Gemm's C of shape {:?} does not broadcast to [{m}, {n}]", c.shape));
            }
            out.iter_mut().zip(index).for_each(|(x, i)| *x += self.beta * cv[i]);
        }
        Ok(vec![Tensor { shape: vec![m, n], data: back(out) }])
    }
}

/// The extent of an axis as three counts: the elements before it, along it, and after
/// it, so that element `(o, i, r)` is at `(o * along + i) * inner + r`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

pub struct Softmax {
    axis: i64,
    /// Before opset 13 the input is read as a matrix split at the axis, and each row of
    /// that matrix sums to one.
    as_matrix: bool,
}

impl Softmax {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        let as_matrix = node.opset < 13;
        Self { axis: node.attrs.int("axis", if as_matrix { 1 } else { -1 }), as_matrix }
    }
}

impl Kernel for Softmax {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (mut v, back) = floats(x)?;
        let axis = resolve_axis(self.axis, x.shape.len())?;
        let (outer, along, inner) = if self.as_matrix {
            (x.shape[..axis].iter().product(), x.shape[axis..].iter().product(), 1)
        } else {
            split_at_axis(&x.shape, axis)
        };
        for o in 0..outer {
            for r in 0..inner {
                let at = |i: usize| (o * along + i) * inner + r;
                let max = (0..along).map(|i| v[at(i)]).fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for i in 0..along {
                    v[at(i)] = (v[at(i)] - max).exp();
                    sum += v[at(i)];
                }
                (0..along).for_each(|i| v[at(i)] /= sum);
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: back(v) }])
    }
}

pub struct ArgExtreme {
    axis: i64,
    keep_dims: bool,
    last: bool,
    max: bool,
}

impl ArgExtreme {
    pub fn new(node: &NodeSpec<'_>, max: bool) -> Self {
        let a = &node.attrs;
        Self {
            axis: a.int("axis", 0),
            keep_dims: a.int("keepdims", 1) != 0,
            last: a.int("select_last_index", 0) != 0,
            max,
        }
    }
}

impl Kernel for ArgExtreme {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let v = x.to_f64()?;
        let axis = resolve_axis(self.axis, x.shape.len())?;
        let (outer, along, inner) = split_at_axis(&x.shape, axis);
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for r in 0..inner {
                let mut best = 0;
                for i in 1..along {
                    let (candidate, current) =
                        (v[(o * along + i) * inner + r], v[(o * along + best) * inner + r]);
                    let better = if self.max { candidate > current } else { candidate < current };
                    if better || (self.last && candidate == current) {
                        best = i;
                    }
                }
                out.push(best as i64);
            }
        }
        let mut shape = x.shape.clone();
        if self.keep_dims {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        Ok(vec![Tensor { shape, data: Data::I64(out) }])
    }
}

#[derive(Clone, Copy)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
}

pub struct Reduce {
    reduction: Reduction,
    /// `Some` when the opset takes the axes as an attribute.
    axes: Option<Vec<i64>>,
    keep_dims: bool,
    noop_with_empty_axes: bool,
}

impl Reduce {
    pub fn new(node: &NodeSpec<'_>, op_type: &str) -> Self {
        let (reduction, axes_from_input) = match op_type {
            "ReduceSum" => (Reduction::Sum, 13),
            "ReduceMean" => (Reduction::Mean, 18),
            "ReduceMax" => (Reduction::Max, 18),
            _ => (Reduction::Min, 18),
        };
        let a = &node.attrs;
        Self {
            reduction,
            axes: (node.opset < axes_from_input).then(|| a.ints("axes")),
            keep_dims: a.int("keepdims", 1) != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
        }
    }
}

impl Kernel for Reduce {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let rank = x.shape.len();
        let axes = match &self.axes {
            Some(axes) => axes.clone(),
            None => inputs.get(1).copied().flatten().map(Tensor::to_i64).transpose()?.unwrap_or_default(),
        };
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![x.clone()]);
        }
        let axes: Vec<usize> = if axes.is_empty() {
            (0..rank).collect()
        } else {
            axes.iter().map(|&a| resolve_axis(a, rank)).collect::<Result<_, _>>()?
        };
        let kept: Vec<usize> =
            x.shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
        let (v, back) = match &x.data {
            Data::I64(v) => (
                v.iter().map(|&e| e as f64).collect(),
                (|v: Vec<f64>| Data::I64(v.into_iter().map(|e| e as i64).collect())) as fn(Vec<f64>) -> Data,
            ),
            _ => floats(x)?,
        };
        let size: usize = kept.iter().product();
        let (start, fold): (f64, fn(f64, f64) -> f64) = match self.reduction {
            Reduction::Sum | Reduction::Mean => (0.0, |a, b| a + b),
            Reduction::Max => (f64::NEG_INFINITY, f64::max),
            Reduction::Min => (f64::INFINITY, f64::min),
        };
        let mut out = vec![start; size];
        let index = crate::tensor::broadcast_index(&kept, &x.shape);
        // `index` maps each input element to the output element it folds into: the
        // inverse of broadcasting the reduced shape back to the input's.
        for (element, &target) in v.iter().zip(&index) {
            out[target] = fold(out[target], *element);
        }
        if let Reduction::Mean = self.reduction {
            let count = (x.len() / size.max(1)) as f64;
            out.iter_mut().for_each(|e| *e /= count);
        }
        let shape = if self.keep_dims {
            kept
        } else {
            x.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
        };
        Ok(vec![Tensor { shape, data: back(out) }])
    }
}
