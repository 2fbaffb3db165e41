//! Reading an inference request: the body into typed tensors (every misfit a 400 that
//! names the part), and the tensors into plugin rows checked against the model's inputs.

use super::binary;
use super::failure::{Failure, bad};
use super::header::{INPUT_KEYS, Node, REQUEST_KEYS};
use super::schema::{Datatype, InferInputTensor, InferRequest, OutputName, RequestedOutput};
use crate::api::rows::json_kind;
use crate::runtime::{Field, FieldSpec, FieldType, Value as WitValue};
use bytes::Bytes;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Reads the JSON header (as [`header::read`] gives it) into an [`InferRequest`], naming
/// the part that does not fit, and gives its binary inputs their share of `binary`.
/// Unknown keys are ignored; `null` is the same as an absent optional key.
pub(super) fn parse_request(body: Node, binary: Bytes) -> Result<InferRequest, Failure> {
    let Node::Object { members, inputs } = body else {
        return bad(format!("the request body must be a JSON object, got {}", body.kind()));
    };
    let [id, parameters, outputs] = <[Option<Value>; REQUEST_KEYS.len()]>::try_from(members)
        .expect("the header reader gives one slot per key");
    let id = match id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => return bad(format!("\"id\" must be a string, got {}", json_kind(&other))),
    };
    let parameters = parse_parameters(parameters, "the request")?;
    let mut inputs: Vec<InferInputTensor> = match inputs.map(|inputs| *inputs) {
        Some(Node::Array(inputs)) => inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| parse_input(i, input))
            .collect::<Result<_, _>>()?,
        None | Some(Node::Other("null")) => {
            return bad("missing \"inputs\": send one tensor per model input field");
        }
        Some(other) => return bad(format!("\"inputs\" must be an array, got {}", other.kind())),
    };
    binary::attach(&mut inputs, binary)?;
    let outputs = match outputs {
        None | Some(Value::Null) => None,
        Some(Value::Array(outputs)) => Some(
            outputs
                .into_iter()
                .enumerate()
                .map(|(i, output)| parse_output(i, output))
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => return bad(format!("\"outputs\" must be an array, got {}", json_kind(&other))),
    };
    Ok(InferRequest { id, parameters, inputs, outputs })
}

pub(super) fn parse_input(index: usize, input: Node) -> Result<InferInputTensor, Failure> {
    let Node::Object { members, .. } = input else {
        return bad(format!("inputs[{index}] must be an object, got {}", input.kind()));
    };
    let [name, shape, datatype, parameters, data] = <[Option<Value>; INPUT_KEYS.len()]>::try_from(members)
        .expect("the header reader gives one slot per key");
    let name = match name {
        Some(Value::String(name)) => name,
        None => return bad(format!("inputs[{index}] has no \"name\"")),
        Some(other) => {
            return bad(format!("inputs[{index}]: \"name\" must be a string, got {}", json_kind(&other)));
        }
    };
    // Named only in errors: formatted only then.
    let what = Named("input", &name);
    let shape = match shape {
        Some(Value::Array(dims)) => dims
            .iter()
            .map(|dim| match dim {
                Value::Number(n) => integer(n),
                _ => None,
            })
            .collect::<Option<Vec<i64>>>(),
        _ => None,
    };
    let Some(shape) = shape else {
        return bad(format!("{what}: \"shape\" must be an array of 64-bit integers"));
    };
    let datatype = match datatype {
        Some(Value::String(datatype)) => match Datatype::parse(&datatype) {
            Some(datatype) => datatype,
            None => {
                return bad(format!(
                    "{what} has datatype \"{datatype}\", which this server does not read; send one of {}",
                    Datatype::list(&Datatype::ALL)
                ));
            }
        },
        None => return bad(format!("{what} has no \"datatype\"")),
        Some(other) => {
            return bad(format!("{what}: \"datatype\" must be a string, got {}", json_kind(&other)));
        }
    };
    let parameters = parse_parameters(parameters, what)?;
    let binary_size = match parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
        None | Some(Value::Null) => None,
        Some(size) => match size.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(size) => Some(size),
            None => return bad(format!("{what}: \"binary_data_size\" must be a count of bytes, got {size}")),
        },
    };
    let data = match (data, binary_size) {
        (Some(Value::Array(data)), None) => data,
        (None | Some(Value::Null), Some(_)) => Vec::new(),
        (Some(_), Some(_)) => {
            return bad(format!("{what} has both \"data\" and a binary_data_size: send its elements once"));
        }
        (None | Some(Value::Null), None) => return bad(format!("{what} has no \"data\"")),
        (Some(other), None) => {
            return bad(format!("{what}: \"data\" must be an array, got {}", json_kind(&other)));
        }
    };
    Ok(InferInputTensor { name, shape, datatype, parameters, data, binary_size, binary: None })
}

pub(super) fn parse_output(index: usize, output: Value) -> Result<RequestedOutput, Failure> {
    let Value::Object(mut output) = output else {
        return bad(format!("outputs[{index}] must be an object, got {}", json_kind(&output)));
    };
    let name = match output.remove("name") {
        Some(Value::String(name)) => known_output(&name)?,
        None => return bad(format!("outputs[{index}] has no \"name\"")),
        Some(other) => {
            return bad(format!("outputs[{index}]: \"name\" must be a string, got {}", json_kind(&other)));
        }
    };
    let parameters = parse_parameters(output.remove("parameters"), Named("output", name.as_str()))?;
    Ok(RequestedOutput { name, parameters })
}

/// The output `name` asks for, over REST or gRPC.
pub(super) fn known_output(name: &str) -> Result<OutputName, Failure> {
    OutputName::parse(name).ok_or_else(|| {
        Failure::BadRequest(format!(
            "unknown output \"{name}\": the model's outputs are \"label\" and \"probabilities\""
        ))
    })
}

/// Refuses a request that names an output twice, over REST or gRPC.
pub(super) fn refuse_repeats(outputs: &[OutputName]) -> Result<(), Failure> {
    for (i, output) in outputs.iter().enumerate() {
        if outputs[..i].contains(output) {
            return bad(format!("output \"{}\" is requested twice", output.as_str()));
        }
    }
    Ok(())
}

pub(super) fn parse_parameters(
    parameters: Option<Value>,
    owner: impl fmt::Display,
) -> Result<Option<Map<String, Value>>, Failure> {
    match parameters {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(parameters)) => Ok(Some(parameters)),
        Some(other) => bad(format!("{owner}: \"parameters\" must be an object, got {}", json_kind(&other))),
    }
}

/// A tensor as errors name it: `input "SPEND"`.
#[derive(Clone, Copy)]
struct Named<'a>(&'static str, &'a str);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.0, self.1)
    }
}

/// A JSON number with no fractional part, as JSON Schema counts integers (`2.0` is one).
pub(super) fn integer(n: &Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let x = n.as_f64()?;
        // Beyond ±2^63 the cast would saturate rather than fail.
        (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
    })
}

/// Turns the input tensors into plugin rows, one per batch element, each field checked
/// against the model's inputs. Returns the rows and the batch size.
pub(super) fn to_rows(
    tensors: &[InferInputTensor],
    inputs: &[FieldSpec],
    max_rows: usize,
) -> Result<(Vec<Vec<Field>>, usize), Failure> {
    // One column of values per input field the request gives (sorted into the model's
    // field order below, so rows read as `/predict` builds them).
    let mut columns: Vec<(&FieldSpec, Vec<WitValue>)> = Vec::with_capacity(inputs.len());
    let mut batch: Option<(usize, &str)> = None;
    for tensor in tensors {
        let Some(spec) = inputs.iter().find(|spec| spec.name == tensor.name) else {
            let names: Vec<&str> = inputs.iter().map(|spec| spec.name.as_str()).collect();
            return bad(format!("unknown input \"{}\": the model's inputs are {names:?}", tensor.name));
        };
        if columns.iter().any(|(seen, _)| seen.name == spec.name) {
            return bad(format!("input \"{}\" is given twice", spec.name));
        }
        // The tensor's own shape and data first: a mismatch within one tensor is the
        // more precise complaint than a batch that differs from another's.
        let rows = batch_of(tensor, max_rows)?;
        let values = column(tensor, spec, rows)?;
        match batch {
            Some((expected, first)) if expected != rows => {
                return bad(format!(
                    "input \"{}\" has a batch of {rows}, but input \"{first}\" has {expected}; \
                     every input must have the same batch",
                    tensor.name
                ));
            }
            Some(_) => {}
            None => batch = Some((rows, &tensor.name)),
        }
        columns.push((spec, values));
    }
    let missing: Vec<&str> = inputs
        .iter()
        .filter(|spec| spec.required && !columns.iter().any(|(seen, _)| seen.name == spec.name))
        .map(|spec| spec.name.as_str())
        .collect();
    if !missing.is_empty() {
        return bad(format!("missing required input(s) {missing:?}: send one tensor per model input field"));
    }
    let Some((batch, _)) = batch else {
        return bad("no inputs: send one tensor per model input field");
    };
    columns.sort_by_key(|(spec, _)| inputs.iter().position(|input| input.name == spec.name));

    let mut values: Vec<_> = columns.into_iter().map(|(spec, values)| (spec, values.into_iter())).collect();
    let rows = (0..batch)
        .map(|_| {
            values
                .iter_mut()
                .filter_map(|(spec, column)| {
                    column.next().map(|value| Field { name: spec.name.clone(), value })
                })
                .collect()
        })
        .collect();
    Ok((rows, batch))
}

/// The batch size of `tensor`: its shape must be `[batch]` or `[batch, 1]`, with a batch
/// from 1 to `max_rows`.
pub(super) fn batch_of(tensor: &InferInputTensor, max_rows: usize) -> Result<usize, Failure> {
    let name = &tensor.name;
    let rows = match tensor.shape.as_slice() {
        [rows] | [rows, 1] => *rows,
        shape => {
            return bad(format!(
                "input \"{name}\" has shape {shape:?}; each input is one column: send [batch] or [batch, 1]"
            ));
        }
    };
    if rows < 1 {
        return bad(format!("input \"{name}\" has a batch of {rows}; send at least one row"));
    }
    match usize::try_from(rows) {
        Ok(rows) if rows <= max_rows => Ok(rows),
        _ => bad(format!("input \"{name}\" has a batch of {rows} rows, over the limit of {max_rows}")),
    }
}

/// The `rows` values of one input tensor, checked against its datatype and field.
pub(super) fn column(
    tensor: &InferInputTensor,
    spec: &FieldSpec,
    rows: usize,
) -> Result<Vec<WitValue>, Failure> {
    let name = &tensor.name;
    let datatype = tensor.datatype;
    let bytes = datatype == Datatype::Bytes;
    match spec.type_ {
        FieldType::Text if !bytes => {
            return bad(format!(
                "input \"{name}\" is a text field: its datatype must be BYTES, not {}",
                datatype.as_str()
            ));
        }
        FieldType::Number if bytes => {
            return bad(format!(
                "input \"{name}\" is a number field: its datatype must be one of {}, not BYTES",
                Datatype::list(&Datatype::ALL[1..])
            ));
        }
        _ => {}
    }

    if let Some(binary) = &tensor.binary {
        return binary::decode(name, datatype, binary, rows);
    }
    let mut elements = Vec::with_capacity(rows);
    flatten(&tensor.data, &mut elements);
    if elements.len() != rows {
        return bad(format!(
            "input \"{name}\" has shape {:?}, which holds {rows} element(s), but its data holds {}",
            tensor.shape,
            elements.len()
        ));
    }
    elements
        .into_iter()
        .enumerate()
        .map(|(i, element)| {
            let value = match element {
                Value::String(text) if bytes => Some(WitValue::Text(text.clone())),
                Value::Number(n) => datatype.read(n).map(WitValue::Number),
                _ => None,
            };
            value.ok_or_else(|| {
                let got = match element {
                    Value::Number(n) => n.to_string(),
                    other => json_kind(other).to_string(),
                };
                Failure::BadRequest(format!(
                    "input \"{name}\" ({}): element {i} must be {}, got {got}",
                    datatype.as_str(),
                    datatype.expected()
                ))
            })
        })
        .collect()
}

/// Appends the leaves of `data`, nested arrays read in row-major order.
pub(super) fn flatten<'a>(data: &'a [Value], leaves: &mut Vec<&'a Value>) {
    for item in data {
        match item {
            Value::Array(inner) => flatten(inner, leaves),
            leaf => leaves.push(leaf),
        }
    }
}
