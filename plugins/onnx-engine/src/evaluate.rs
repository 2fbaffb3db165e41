//! Any graph the engine plans, run on named tensors with every output returned: how the
//! operator tests hold the engine to onnxruntime, outside the classifier view.

use crate::graph::Graph;
use crate::proto;
use crate::tensor::{Data, Strings, Tensor};

/// A tensor with its texts spelled out.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f32>),
    Double(Vec<f64>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

/// Plans the model in `bytes`, feeds `inputs` by name, and returns every graph output.
pub fn evaluate(bytes: &[u8], inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, String> {
    let model = proto::decode(bytes::Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    let mut graph = Graph::plan(&model).map_err(|e| format!("{e:?}"))?;
    let wanted: Vec<_> = graph.outputs.iter().map(|o| o.id).collect();
    graph.keep_only(&wanted);
    let mut strings = Strings::new(&graph.strings);
    let mut feeds = Vec::new();
    for input in inputs {
        let id = graph
            .inputs
            .iter()
            .find(|i| i.name == input.name)
            .ok_or(format!("no input {:?}", input.name))?
            .id;
        let data = match input.values {
            Values::Float(v) => Data::F32(v),
            Values::Double(v) => Data::F64(v),
            Values::Int64(v) => Data::I64(v),
            Values::Int32(v) => Data::I32(v),
            Values::Bool(v) => Data::Bool(v),
            Values::Text(v) => Data::Str(v.into_iter().map(|t| strings.add(t)).collect()),
        };
        feeds.push((id, Tensor::new(input.shape, data)?));
    }
    let outputs = graph.run(feeds, &wanted, &mut strings)?;
    Ok(graph
        .outputs
        .iter()
        .zip(outputs)
        .map(|(output, tensor)| NamedTensor {
            name: output.name.clone(),
            shape: tensor.shape,
            values: match tensor.data {
                Data::F32(v) => Values::Float(v),
                Data::F64(v) => Values::Double(v),
                Data::I64(v) => Values::Int64(v),
                Data::I32(v) => Values::Int32(v),
                Data::Bool(v) => Values::Bool(v),
                Data::Str(ids) => Values::Text(ids.iter().map(|&id| strings.get(id).to_string()).collect()),
            },
        })
        .collect())
}
