//! The protocol's JSON bodies, as types: what the OpenAPI description shows and what the
//! handlers answer with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use utoipa::ToSchema;

/// `GET /v2`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    /// Protocol extensions served: none.
    pub extensions: Vec<String>,
}

/// `GET /v2/health/live`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerLive {
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerReady {
    pub ready: bool,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// `GET /v2/models/{name}`: the serving version's tensors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// Only the serving version is available.
    pub versions: Vec<String>,
    pub platform: String,
    /// One tensor per input field: BYTES for text, FP64 for numbers.
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: Datatype,
    /// `-1` is the batch dimension.
    pub shape: Vec<i64>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `binary_data_output: true` answers every output in binary after the JSON header,
    /// unless an output says otherwise. Anything else is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// One tensor per model input field; optional fields may be left out.
    pub inputs: Vec<InferInputTensor>,
    /// The outputs to return, in this order; all of them when absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InferInputTensor {
    /// A model input field.
    pub name: String,
    /// `[batch]` or `[batch, 1]`; every input has the same batch.
    pub shape: Vec<i64>,
    /// BYTES for a text field; any other for a number field.
    pub datatype: Datatype,
    /// `binary_data_size`: the input's elements follow the JSON header in binary (with
    /// `Inference-Header-Content-Length`) instead of in `data`. Anything else is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// The elements in row-major order, flat or nested; absent with `binary_data_size`.
    #[serde(default)]
    pub data: Vec<Value>,
    /// `binary_data_size`, read from `parameters`.
    #[serde(skip)]
    pub binary_size: Option<usize>,
    /// The input's binary elements, when it declares them.
    #[serde(skip)]
    pub binary: Option<bytes::Bytes>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestedOutput {
    pub name: OutputName,
    /// `binary_data: true` answers this output in binary after the JSON header (false:
    /// in `data`, whatever the request's `binary_data_output`). Anything else is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    /// The request's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutputTensor {
    pub name: OutputName,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
    /// `binary_data_size`, when the output's elements follow the JSON header in binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinaryOutput>,
    /// Row-major elements: strings for BYTES, numbers for FP64; absent when binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<Value>>,
}

/// Where a binary output's elements are: the next `binary_data_size` bytes after the
/// JSON header and the outputs before it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BinaryOutput {
    pub binary_data_size: usize,
}

/// The tensor datatypes this server reads. BOOL, FP16 and BF16 are not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Datatype {
    Bytes,
    Fp32,
    Fp64,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

/// The output tensors every model answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputName {
    /// The chosen label of each batch element (BYTES, `[batch]`).
    Label,
    /// The probability of every label, in the model's label order (FP64, `[batch, labels]`).
    Probabilities,
}

impl Datatype {
    /// Every datatype, BYTES first, in the order messages list them.
    pub(super) const ALL: [Self; 11] = [
        Self::Bytes,
        Self::Fp32,
        Self::Fp64,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Bytes => "BYTES",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|datatype| datatype.as_str() == name)
    }

    pub(super) fn list(datatypes: &[Self]) -> String {
        datatypes.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// A numeric element as the plugin sees it (an `f64`); `None` when it is out of the
    /// datatype's range or, for an integer datatype, not written as an integer.
    pub(super) fn read(self, n: &Number) -> Option<f64> {
        let signed = |min: i64, max: i64| n.as_i64().filter(|x| (min..=max).contains(x)).map(|x| x as f64);
        let unsigned = |max: u64| n.as_u64().filter(|x| *x <= max).map(|x| x as f64);
        match self {
            Self::Bytes => None,
            Self::Fp32 => n.as_f64().filter(|x| x.abs() <= f64::from(f32::MAX)),
            Self::Fp64 => n.as_f64(),
            Self::Int8 => signed(i8::MIN.into(), i8::MAX.into()),
            Self::Int16 => signed(i16::MIN.into(), i16::MAX.into()),
            Self::Int32 => signed(i32::MIN.into(), i32::MAX.into()),
            Self::Int64 => signed(i64::MIN, i64::MAX),
            Self::Uint8 => unsigned(u8::MAX.into()),
            Self::Uint16 => unsigned(u16::MAX.into()),
            Self::Uint32 => unsigned(u32::MAX.into()),
            Self::Uint64 => unsigned(u64::MAX),
        }
    }

    /// Bytes per element in binary (BYTES elements have a length prefix instead: 0).
    pub(super) fn width(self) -> usize {
        match self {
            Self::Bytes => 0,
            Self::Int8 | Self::Uint8 => 1,
            Self::Int16 | Self::Uint16 => 2,
            Self::Fp32 | Self::Int32 | Self::Uint32 => 4,
            Self::Fp64 | Self::Int64 | Self::Uint64 => 8,
        }
    }

    /// A little-endian numeric element of [`Self::width`] bytes, as the plugin sees it.
    pub(super) fn read_le(self, element: &[u8]) -> f64 {
        fn bytes<const N: usize>(element: &[u8]) -> [u8; N] {
            element.try_into().expect("an element of the datatype's width")
        }
        match self {
            Self::Bytes => f64::NAN,
            Self::Fp32 => f32::from_le_bytes(bytes(element)).into(),
            Self::Fp64 => f64::from_le_bytes(bytes(element)),
            Self::Int8 => i8::from_le_bytes(bytes(element)).into(),
            Self::Int16 => i16::from_le_bytes(bytes(element)).into(),
            Self::Int32 => i32::from_le_bytes(bytes(element)).into(),
            Self::Int64 => i64::from_le_bytes(bytes(element)) as f64,
            Self::Uint8 => u8::from_le_bytes(bytes(element)).into(),
            Self::Uint16 => u16::from_le_bytes(bytes(element)).into(),
            Self::Uint32 => u32::from_le_bytes(bytes(element)).into(),
            Self::Uint64 => u64::from_le_bytes(bytes(element)) as f64,
        }
    }

    /// What an element of this datatype must be, for messages.
    pub(super) fn expected(self) -> &'static str {
        match self {
            Self::Bytes => "a string",
            Self::Fp32 => "a number within FP32 range",
            Self::Fp64 => "a number",
            Self::Int8 => "an integer from -128 to 127",
            Self::Int16 => "an integer from -32768 to 32767",
            Self::Int32 => "an integer from -2147483648 to 2147483647",
            Self::Int64 => "a 64-bit signed integer",
            Self::Uint8 => "an integer from 0 to 255",
            Self::Uint16 => "an integer from 0 to 65535",
            Self::Uint32 => "an integer from 0 to 4294967295",
            Self::Uint64 => "a 64-bit unsigned integer",
        }
    }
}

impl OutputName {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Label => "label",
            Self::Probabilities => "probabilities",
        }
    }

    /// Every output, in the order an answer gives them when none are requested.
    pub(super) const ALL: [Self; 2] = [Self::Label, Self::Probabilities];

    pub(super) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|output| output.as_str() == name)
    }
}
