//! Operators that move elements without computing on them (`Identity`, `Concat`,
//! `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`, `Gather`, `Shape`), plus `Constant` and
//! `Cast`.

use super::{BuildError, Kernel, NodeSpec, required};
use crate::tensor::{DType, Data, Element, Strings, Tensor, by_dtype, resolve_axis};

/// Runs a view operator (one whose [`Kernel::reshaped`] is `Some`) by copying its input.
fn copy_with_new_shape(kernel: &dyn Kernel, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let shape = kernel.reshaped(inputs).expect("a view operator")?;
    Ok(vec![Tensor::new(shape, required(inputs, 0)?.data.clone())?])
}

pub struct Identity;

impl Kernel for Identity {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        copy_with_new_shape(self, inputs)
    }

    fn reshaped(&self, inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        Some(required(inputs, 0).map(|x| x.shape.clone()))
    }
}

pub struct Constant(Tensor);

impl Constant {
    pub fn new(node: &NodeSpec<'_>, strings: &mut Strings<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let tensor = if let Some(proto) = a.tensor("value") {
            Tensor::from_proto(proto, strings)?
        } else if a.has("value_float") {
            Tensor { shape: vec![], data: Data::F32(vec![a.float("value_float", 0.0)]) }
        } else if a.has("value_floats") {
            let v = a.floats("value_floats");
            Tensor { shape: vec![v.len()], data: Data::F32(v) }
        } else if a.has("value_int") {
            Tensor { shape: vec![], data: Data::I64(vec![a.int("value_int", 0)]) }
        } else if a.has("value_ints") {
            let v = a.ints("value_ints");
            Tensor { shape: vec![v.len()], data: Data::I64(v) }
        } else if a.has("value_string") {
            Tensor { shape: vec![], data: Data::Str(vec![strings.add(a.string("value_string", ""))]) }
        } else if a.has("value_strings") {
            let v: Vec<u32> = a.strings("value_strings").into_iter().map(|s| strings.add(s)).collect();
            Tensor { shape: vec![v.len()], data: Data::Str(v) }
        } else {
            return Err(BuildError::Invalid(
                "a Constant without a value (sparse values are not supported)".into(),
            ));
        };
        Ok(Self(tensor))
    }
}

impl Kernel for Constant {
    fn run(&self, _: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        Ok(vec![self.0.clone()])
    }
}

pub struct Cast(DType);

impl Cast {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        let to = node.attrs.int("to", 0) as i32;
        DType::from_onnx(to).map(Self).ok_or_else(|| {
            BuildError::Invalid(format!("Cast to {}, which is not supported", DType::onnx_name(to)))
        })
    }
}

impl Kernel for Cast {
    fn run(&self, inputs: &[Option<&Tensor>], strings: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        Ok(vec![Tensor { shape: x.shape.clone(), data: cast(&x.data, self.0, strings)? }])
    }
}

/// Converts `data` to `to` as onnxruntime's Cast does for these types: numbers with C
/// conversions, texts parsed as numbers, numbers written as text.
pub fn cast(data: &Data, to: DType, strings: &mut Strings<'_>) -> Result<Data, String> {
    macro_rules! numbers {
        ($v:expr) => {
            match to {
                DType::F32 => Data::F32($v.iter().map(|&x| x as f32).collect()),
                DType::F64 => Data::F64($v.iter().map(|&x| x as f64).collect()),
                DType::I64 => Data::I64($v.iter().map(|&x| x as i64).collect()),
                DType::I32 => Data::I32($v.iter().map(|&x| x as i32).collect()),
                DType::Bool => Data::Bool($v.iter().map(|&x| x as f64 != 0.0).collect()),
                DType::Str => Data::Str($v.iter().map(|&x| strings.add(x.to_string())).collect()),
            }
        };
    }
    Ok(match data {
        Data::F32(v) => numbers!(v),
        Data::F64(v) => numbers!(v),
        Data::I64(v) => numbers!(v),
        Data::I32(v) => numbers!(v),
        Data::Bool(v) => {
            let as_numbers: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
            match to {
                DType::Bool => Data::Bool(v.clone()),
                DType::Str => {
                    Data::Str(v.iter().map(|&b| strings.add(if b { "1" } else { "0" }.into())).collect())
                }
                _ => numbers!(as_numbers),
            }
        }
        Data::Str(ids) => match to {
            DType::Str => Data::Str(ids.clone()),
            _ => {
                let parsed = ids
                    .iter()
                    .map(|&id| {
                        let text = strings.get(id);
                        text.trim()
                            .parse::<f64>()
                            .map_err(|_| format!("cannot cast the text {text:?} to a number"))
                    })
                    .collect::<Result<Vec<f64>, String>>()?;
                numbers!(parsed)
            }
        },
    })
}

pub struct Concat(i64);

impl Concat {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        if !node.attrs.has("axis") {
            return Err(BuildError::Invalid("Concat without an axis".into()));
        }
        Ok(Self(node.attrs.int("axis", 0)))
    }
}

impl Kernel for Concat {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let first = parts.first().ok_or("no inputs")?;
        let axis = resolve_axis(self.0, first.shape.len())?;
        let mut shape = first.shape.clone();
        shape[axis] = 0;
        for part in &parts {
            let same_rest = part.shape.len() == shape.len()
                && part.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !same_rest || part.dtype() != first.dtype() {
                return Err(format!(
                    "cannot join {:?} {} with {:?} {} on axis {axis}",
                    first.shape,
                    first.dtype().name(),
                    part.shape,
                    part.dtype().name()
                ));
            }
            shape[axis] += part.shape[axis];
        }
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let data = by_dtype!(first.dtype(), concat_typed(&parts, outer, inner, axis))?;
        Ok(vec![Tensor { shape, data }])
    }
}

fn concat_typed<T: Element>(
    parts: &[&Tensor],
    outer: usize,
    inner: usize,
    axis: usize,
) -> Result<Data, String> {
    let slices = parts.iter().map(|p| p.typed::<T>()).collect::<Result<Vec<_>, _>>()?;
    let Some(first) = slices.first().and_then(|s| s.first()) else {
        return Ok(T::wrap(Vec::new()));
    };
    let row: usize = parts.iter().map(|p| p.shape[axis] * inner).sum();
    let mut out = vec![*first; outer * row];
    // Part by part, so each copy loop runs over one part's chunks of a fixed size.
    let mut offset = 0;
    for (part, slice) in parts.iter().zip(&slices) {
        let chunk = part.shape[axis] * inner;
        if chunk == 0 {
            continue;
        }
        for (target, source) in out.chunks_exact_mut(row).zip(slice.chunks_exact(chunk)) {
            target[offset..offset + chunk].copy_from_slice(source);
        }
        offset += chunk;
    }
    Ok(T::wrap(out))
}

pub struct Reshape {
    allow_zero: bool,
}

impl Reshape {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self { allow_zero: node.attrs.int("allowzero", 0) != 0 }
    }

    fn shape(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<usize>, String> {
        let x = required(inputs, 0)?;
        let wanted = required(inputs, 1)?.to_i64()?;
        let mut shape = Vec::with_capacity(wanted.len());
        let mut infer = None;
        for (i, &d) in wanted.iter().enumerate() {
            shape.push(match d {
                0 if !self.allow_zero => *x.shape.get(i).ok_or("shape copies a dimension the input lacks")?,
                -1 if infer.is_none() => {
                    infer = Some(i);
                    1
                }
                d => usize::try_from(d).map_err(|_| format!("invalid dimension {d} in shape {wanted:?}"))?,
            });
        }
        if let Some(i) = infer {
            let known: usize = shape.iter().product();
            if known == 0 || !x.len().is_multiple_of(known) {
                return Err(format!("cannot reshape {:?} to {wanted:?}", x.shape));
            }
            shape[i] = x.len() / known;
        }
        Ok(shape)
    }
}

impl Kernel for Reshape {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        copy_with_new_shape(self, inputs)
    }

    fn reshaped(&self, inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        Some(self.shape(inputs))
    }
}

pub struct Flatten(i64);

impl Flatten {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(node.attrs.int("axis", 1))
    }
}

impl Kernel for Flatten {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        copy_with_new_shape(self, inputs)
    }

    fn reshaped(&self, inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        Some(required(inputs, 0).and_then(|x| {
            let rank = x.shape.len();
            // The axis may equal the rank here (everything in the first dimension).
            let axis = if self.0 == rank as i64 { rank } else { resolve_axis(self.0, rank)? };
            Ok(vec![x.shape[..axis].iter().product(), x.shape[axis..].iter().product()])
        }))
    }
}

/// Axes from the `axes` attribute (before opset 13) or the second input (from 13).
fn axes(attribute: &Option<Vec<i64>>, inputs: &[Option<&Tensor>]) -> Result<Option<Vec<i64>>, String> {
    match attribute {
        Some(axes) => Ok(Some(axes.clone())),
        None => inputs.get(1).copied().flatten().map(Tensor::to_i64).transpose(),
    }
}

fn axes_attribute(node: &NodeSpec<'_>) -> Option<Vec<i64>> {
    (node.opset < 13 && node.attrs.has("axes")).then(|| node.attrs.ints("axes"))
}

pub struct Squeeze(Option<Vec<i64>>);

impl Squeeze {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(axes_attribute(node))
    }

    fn shape(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<usize>, String> {
        let x = required(inputs, 0)?;
        Ok(match axes(&self.0, inputs)? {
            None => x.shape.iter().copied().filter(|&d| d != 1).collect(),
            Some(axes) => {
                let axes =
                    axes.iter().map(|&a| resolve_axis(a, x.shape.len())).collect::<Result<Vec<_>, _>>()?;
                if let Some(&a) = axes.iter().find(|&&a| x.shape[a] != 1) {
                    return Err(format!("cannot squeeze axis {a} of shape {:?}", x.shape));
                }
                x.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
            }
        })
    }
}

impl Kernel for Squeeze {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        copy_with_new_shape(self, inputs)
    }

    fn reshaped(&self, inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        Some(self.shape(inputs))
    }
}

pub struct Unsqueeze(Option<Vec<i64>>);

impl Unsqueeze {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(axes_attribute(node))
    }
}

impl Kernel for Unsqueeze {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        copy_with_new_shape(self, inputs)
    }

    fn reshaped(&self, inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        Some(required(inputs, 0).and_then(|x| {
            let axes = axes(&self.0, inputs)?.ok_or("Unsqueeze without axes")?;
            let rank = x.shape.len() + axes.len();
            let mut axes = axes.iter().map(|&a| resolve_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
            axes.sort_unstable();
            let mut rest = x.shape.iter();
            Ok((0..rank).map(|i| if axes.contains(&i) { 1 } else { *rest.next().unwrap_or(&1) }).collect())
        }))
    }
}

pub struct Shape;

impl Kernel for Shape {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let dims = x.shape.iter().map(|&d| d as i64).collect();
        Ok(vec![Tensor { shape: vec![x.shape.len()], data: Data::I64(dims) }])
    }
}

pub struct Gather(i64);

impl Gather {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(node.attrs.int("axis", 0))
    }
}

impl Kernel for Gather {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let indices = required(inputs, 1)?;
        let axis = resolve_axis(self.0, x.shape.len())?;
        let dim = x.shape[axis];
        let picks = indices
            .to_i64()?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + dim as i64 } else { i };
                usize::try_from(j)
                    .ok()
                    .filter(|&j| j < dim)
                    .ok_or_else(|| format!("index {i} is out of range for {dim}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        let mut shape = x.shape[..axis].to_vec();
        shape.extend(&indices.shape);
        shape.extend(&x.shape[axis + 1..]);
        let data = by_dtype!(x.dtype(), gather_typed(x, &picks, outer, dim, inner))?;
        Ok(vec![Tensor { shape, data }])
    }
}

/// Elements `picks` of the middle axis of `x`, read as `[outer, dim, inner]`.
pub(super) fn gather_typed<T: Element>(
    x: &Tensor,
    picks: &[usize],
    outer: usize,
    dim: usize,
    inner: usize,
) -> Result<Data, String> {
    let values = x.typed::<T>()?;
    let mut out = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in picks {
            let start = (o * dim + p) * inner;
            out.extend_from_slice(&values[start..start + inner]);
        }
    }
    Ok(T::wrap(out))
}
