//! `LinearClassifier`: class scores `x·Wᵀ + b` in single precision, the label from the
//! raw scores, then the post-transform, with onnxruntime's one-score (binary) case.

use super::post_transform::{PostTransform, logistic};
use super::{BuildError, Kernel, NodeSpec, required};
use crate::graph::ClassLabels;
use crate::tensor::{Data, Strings, Tensor};

/// Class labels as output tensors hold them: text ids, or integers.
pub enum LabelValues {
    Text(Vec<u32>),
    Int(Vec<i64>),
}

impl LabelValues {
    pub fn new(labels: Option<ClassLabels>, strings: &mut Strings<'_>) -> Self {
        match labels {
            Some(ClassLabels::Text(texts)) => Self::Text(texts.into_iter().map(|t| strings.add(t)).collect()),
            Some(ClassLabels::Int(ints)) => Self::Int(ints),
            None => Self::Int(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::Int(v) => v.len(),
        }
    }

    /// The label tensor for `picks`, indices into the labels (or, with no labels, the
    /// index itself).
    pub fn tensor(&self, picks: &[usize]) -> Tensor {
        let data = match self {
            Self::Text(ids) => Data::Str(picks.iter().map(|&p| ids[p]).collect()),
            Self::Int(ints) if ints.is_empty() => Data::I64(picks.iter().map(|&p| p as i64).collect()),
            Self::Int(ints) => Data::I64(picks.iter().map(|&p| ints[p]).collect()),
        };
        Tensor { shape: vec![picks.len()], data }
    }
}

pub struct LinearClassifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    labels: LabelValues,
    post_transform: PostTransform,
}

impl LinearClassifier {
    pub fn new(node: &NodeSpec<'_>, strings: &mut Strings<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let coefficients = a.floats("coefficients");
        let intercepts = a.floats("intercepts");
        let post_transform = PostTransform::parse(&a.string("post_transform", "NONE"))?;
        let labels = LabelValues::new(ClassLabels::from_attrs(a), strings);
        let classes = intercepts.len();
        if classes == 0 || coefficients.is_empty() || !coefficients.len().is_multiple_of(classes) {
            return Err(BuildError::Invalid(format!(
                "{} coefficients for {classes} intercepts",
                coefficients.len()
            )));
        }
        match (classes, labels.len()) {
            (1, 0 | 2) if post_transform != PostTransform::Probit => {}
            (1, _) => return Err(BuildError::Invalid("one score needs two labels, and no PROBIT".into())),
            (c, l) if c != l => return Err(BuildError::Invalid(format!("{c} classes and {l} labels"))),
            _ => {}
        }
        Ok(Self { coefficients, intercepts, labels, post_transform })
    }
}

impl Kernel for LinearClassifier {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (rows, features) = x.as_matrix(true);
        let classes = self.intercepts.len();
        if self.coefficients.len() < classes * features {
            return Err(format!(
                "{} coefficients for {classes} classes of {features} features",
                self.coefficients.len()
            ));
        }
        let stride = self.coefficients.len() / classes;
        let values = x.f32s()?;
        let binary = classes == 1;
        let width = if binary && self.labels.len() == 2 { 2 } else { classes };
        let mut scores = Vec::with_capacity(rows * width);
        let mut picks = Vec::with_capacity(rows);
        let mut raw = vec![0f32; classes];
        for row in values.chunks(features.max(1)).take(rows) {
            raw.fill(0.0);
            for (f, &x) in row.iter().enumerate() {
                // One-hot features are mostly zeros; trained weights are finite, so
                // skipping them changes nothing.
                if x != 0.0 {
                    for (c, score) in raw.iter_mut().enumerate() {
                        *score += x * self.coefficients[c * stride + f];
                    }
                }
            }
            raw.iter_mut().zip(&self.intercepts).for_each(|(score, b)| *score += b);
            if binary {
                let s = raw[0];
                picks.push(usize::from(s > 0.0));
                match (width, self.post_transform) {
                    (2, PostTransform::Logistic) => scores.extend([1.0 - logistic(s), logistic(s)]),
                    (2, _) => scores.extend([1.0 - s, s]),
                    _ => scores.push(s),
                }
            } else {
                // The label is the first of the highest raw scores.
                let best = (1..classes).fold(0, |best, c| if raw[c] > raw[best] { c } else { best });
                picks.push(best);
                self.post_transform.apply(&mut raw);
                scores.extend_from_slice(&raw);
            }
        }
        let labels = self.labels.tensor(&picks);
        Ok(vec![labels, Tensor { shape: vec![rows, width], data: Data::F32(scores) }])
    }
}
