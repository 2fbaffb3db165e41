//! Tensors as the engine holds them: a shape and one flat, row-major vector of one
//! element type. Texts are ids into a [`Strings`] table, so moving, gathering or
//! concatenating text columns never copies a string, and an encoder looks each distinct
//! text up once per batch.

use crate::proto::TensorProto;
use std::borrow::Cow;

/// The element types the engine computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl DType {
    /// From `TensorProto.DataType`; `None` for types the engine does not compute with.
    pub fn from_onnx(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::F32,
            6 => Self::I32,
            7 => Self::I64,
            8 => Self::Str,
            9 => Self::Bool,
            11 => Self::F64,
            _ => return None,
        })
    }

    /// The ONNX name of the type, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float",
            Self::F64 => "double",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::Bool => "bool",
            Self::Str => "string",
        }
    }

    /// The ONNX name of any `TensorProto.DataType` code, for messages about types the
    /// engine does not take.
    pub fn onnx_name(code: i32) -> String {
        match Self::from_onnx(code) {
            Some(dtype) => dtype.name().into(),
            None => match code {
                2 => "uint8".into(),
                3 => "int8".into(),
                4 => "uint16".into(),
                5 => "int16".into(),
                10 => "float16".into(),
                12 => "uint32".into(),
                13 => "uint64".into(),
                14 | 15 => "complex".into(),
                16 => "bfloat16".into(),
                other => format!("type {other}"),
            },
        }
    }
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    /// Ids into the run's [`Strings`].
    Str(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Self::F32(_) => DType::F32,
            Self::F64(_) => DType::F64,
            Self::I64(_) => DType::I64,
            Self::I32(_) => DType::I32,
            Self::Bool(_) => DType::Bool,
            Self::Str(_) => DType::Str,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Str(v) => v.len(),
        }
    }
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Self, String> {
        let elements: usize = shape.iter().product();
        if elements != data.len() {
            return Err(format!("shape {shape:?} holds {elements} elements, not {}", data.len()));
        }
        Ok(Self { shape, data })
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The elements as `f32`, converted from any numeric type (as the ONNX-ML operators
    /// that take `tensor(double)` or integers and compute in float do).
    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        Ok(match &self.data {
            Data::F32(v) => v.clone(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Data::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
            Data::Str(_) => return Err("expected numbers, got strings".into()),
        })
    }

    /// [`Tensor::to_f32`], borrowed when the elements already are `f32`.
    pub fn f32s(&self) -> Result<Cow<'_, [f32]>, String> {
        match &self.data {
            Data::F32(v) => Ok(Cow::Borrowed(v)),
            _ => self.to_f32().map(Cow::Owned),
        }
    }

    /// The elements as `f64`, converted from any numeric type.
    pub fn to_f64(&self) -> Result<Vec<f64>, String> {
        Ok(match &self.data {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Data::Str(_) => return Err("expected numbers, got strings".into()),
        })
    }

    /// The elements as `i64`, from an integer tensor (shapes, axes, indices).
    pub fn to_i64(&self) -> Result<Vec<i64>, String> {
        match &self.data {
            Data::I64(v) => Ok(v.clone()),
            Data::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            other => Err(format!("expected integers, got {}", other.dtype().name())),
        }
    }

    /// Rows and columns when the tensor is read as a matrix: the first dimension counts
    /// rows and the rest make up one row. A 1-D tensor is one column, or with
    /// `one_row_if_1d` one row.
    pub fn as_matrix(&self, one_row_if_1d: bool) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [n] if one_row_if_1d => (1, *n),
            [n] => (*n, 1),
            [n, rest @ ..] => (*n, rest.iter().product()),
        }
    }

    /// Decodes an initializer or attribute tensor, interning its texts into `strings`.
    pub fn from_proto(proto: &TensorProto, strings: &mut Strings<'_>) -> Result<Self, String> {
        let name = proto.name.as_deref().unwrap_or("");
        if proto.data_location == Some(1) {
            return Err(format!(
                "tensor {name:?} keeps its data in an external file; save the model with its data inside"
            ));
        }
        let code = proto.data_type.unwrap_or(0);
        let dtype = DType::from_onnx(code).ok_or_else(|| {
            format!("tensor {name:?} is of type {}, which is not supported", DType::onnx_name(code))
        })?;
        let shape = proto
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("tensor {name:?} has a negative dimension")))
            .collect::<Result<Vec<_>, _>>()?;
        let raw = proto.raw_data.as_deref().filter(|r| !r.is_empty());
        let data = match (dtype, raw) {
            (DType::F32, Some(raw)) => Data::F32(le_chunks(raw, f32::from_le_bytes)?),
            (DType::F64, Some(raw)) => Data::F64(le_chunks(raw, f64::from_le_bytes)?),
            (DType::I64, Some(raw)) => Data::I64(le_chunks(raw, i64::from_le_bytes)?),
            (DType::I32, Some(raw)) => Data::I32(le_chunks(raw, i32::from_le_bytes)?),
            (DType::Bool, Some(raw)) => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
            (DType::Str, Some(_)) => return Err(format!("string tensor {name:?} has raw data")),
            (DType::F32, None) => Data::F32(proto.float_data.clone()),
            (DType::F64, None) => Data::F64(proto.double_data.clone()),
            (DType::I64, None) => Data::I64(proto.int64_data.clone()),
            (DType::I32, None) => Data::I32(proto.int32_data.clone()),
            (DType::Bool, None) => Data::Bool(proto.int32_data.iter().map(|&b| b != 0).collect()),
            (DType::Str, None) => Data::Str(proto.string_data.iter().map(|s| strings.add(utf8(s))).collect()),
        };
        Tensor::new(shape, data).map_err(|e| format!("tensor {name:?}: {e}"))
    }
}

fn le_chunks<const N: usize, T>(raw: &[u8], from: fn([u8; N]) -> T) -> Result<Vec<T>, String> {
    if !raw.len().is_multiple_of(N) {
        return Err(format!(
            "raw tensor data of {} bytes is not a whole number of {N}-byte elements",
            raw.len()
        ));
    }
    Ok(raw.chunks_exact(N).map(|c| from(c.try_into().expect("chunk of N bytes"))).collect())
}

/// Text from protobuf bytes; invalid UTF-8 is replaced rather than refused.
pub fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The texts a run can refer to: the model's own (class labels, constants), shared by
/// every run, and the run's (the batch's texts and any an operator makes).
#[derive(Debug)]
pub struct Strings<'a> {
    base: &'a [String],
    added: Vec<String>,
}

impl<'a> Strings<'a> {
    pub fn new(base: &'a [String]) -> Self {
        Self::with_added(base, Vec::new())
    }

    /// A table whose ids after `base` are `added`'s, in order.
    pub fn with_added(base: &'a [String], added: Vec<String>) -> Self {
        Self { base, added }
    }

    pub fn get(&self, id: u32) -> &str {
        let id = id as usize;
        match self.base.get(id) {
            Some(text) => text,
            None => &self.added[id - self.base.len()],
        }
    }

    pub fn add(&mut self, text: String) -> u32 {
        self.added.push(text);
        u32::try_from(self.base.len() + self.added.len() - 1).expect("fewer than 2^32 texts")
    }

    /// How many ids there are: every id is below it.
    pub fn len(&self) -> usize {
        self.base.len() + self.added.len()
    }

    /// The texts added so far (the model's own, when planning).
    pub fn into_added(self) -> Vec<String> {
        self.added
    }
}

/// Numpy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// For each element of a tensor of shape `out`, the index of the element it reads in a
/// tensor of shape `from` broadcast to `out`.
pub fn broadcast_index(from: &[usize], out: &[usize]) -> Vec<usize> {
    let total: usize = out.iter().product();
    if from == out {
        return (0..total).collect();
    }
    let offset = out.len() - from.len();
    let mut strides = vec![0; out.len()];
    let mut stride = 1;
    for i in (0..from.len()).rev() {
        strides[i + offset] = if from[i] == 1 { 0 } else { stride };
        stride *= from[i];
    }
    let mut index = Vec::with_capacity(total);
    let mut position = vec![0; out.len()];
    for _ in 0..total {
        index.push(position.iter().zip(&strides).map(|(p, s)| p * s).sum());
        for axis in (0..out.len()).rev() {
            position[axis] += 1;
            if position[axis] < out[axis] {
                break;
            }
            position[axis] = 0;
        }
    }
    index
}

/// An axis attribute (negative counts from the end) resolved against `rank`.
pub fn resolve_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(resolved)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

/// An element type a [`Data`] variant holds; `u32` is a text id.
pub trait Element: Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    const DTYPE: DType;
    fn slice(data: &Data) -> Option<&[Self]>;
    fn wrap(values: Vec<Self>) -> Data;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn slice(data: &Data) -> Option<&[Self]> {
                match data {
                    Data::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(values: Vec<Self>) -> Data {
                Data::$variant(values)
            }
        }
    };
}
element!(f32, F32);
element!(f64, F64);
element!(i64, I64);
element!(i32, I32);
element!(bool, Bool);
element!(u32, Str);

impl Tensor {
    /// The elements, if they are of type `T`.
    pub fn typed<T: Element>(&self) -> Result<&[T], String> {
        T::slice(&self.data)
            .ok_or_else(|| format!("expected {}, got {}", T::DTYPE.name(), self.dtype().name()))
    }
}

/// Calls the generic function `$f::<T>` with the element type `T` of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::Bool => $f::<bool>($($arg),*),
            DType::Str => $f::<u32>($($arg),*),
        }
    };
}
pub(crate) use by_dtype;
