//! From a decoded ONNX graph to a plan that runs a batch: values numbered, operators
//! built once, `Identity` and `ZipMap` turned into aliases, every node whose inputs are
//! all constants computed once, and nodes that no chosen output needs dropped.

use crate::attrs::Attrs;
use crate::ops::{self, BuildError, Kernel, ML_DOMAIN, NodeSpec};
use crate::proto::{GraphProto, ModelProto, TypeProto, type_proto};
use crate::tensor::{Strings, Tensor};
use std::collections::HashMap;

pub type ValueId = usize;

/// Class labels as an operator's attributes give them.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabels {
    Text(Vec<String>),
    Int(Vec<i64>),
}

impl ClassLabels {
    pub fn from_attrs(attrs: &Attrs<'_>) -> Option<Self> {
        let texts = attrs.strings("classlabels_strings");
        let ints = attrs.ints("classlabels_int64s");
        let ints = if ints.is_empty() { attrs.ints("classlabels_ints") } else { ints };
        match (texts.is_empty(), ints.is_empty()) {
            (false, _) => Some(Self::Text(texts)),
            (true, false) => Some(Self::Int(ints)),
            (true, true) => None,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::Int(v) => v.len(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Text(v) => v.clone(),
            Self::Int(v) => v.iter().map(i64::to_string).collect(),
        }
    }
}

/// The declared type of a graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    /// A tensor: its element type code and dimensions (`None` where symbolic or unknown).
    Tensor { elem_type: i32, dims: Option<Vec<Option<i64>>> },
    /// Anything else (a sequence, a map, …), described for messages.
    Other(&'static str),
}

impl Declared {
    fn from_proto(proto: Option<&TypeProto>) -> Self {
        match proto.and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::Tensor(t)) => Self::Tensor {
                elem_type: t.elem_type.unwrap_or(0),
                dims: t.shape.as_ref().map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                            _ => None,
                        })
                        .collect()
                }),
            },
            Some(type_proto::Value::Sequence(_)) => Self::Other("a sequence"),
            Some(type_proto::Value::Map(_)) => Self::Other("a map"),
            Some(type_proto::Value::SparseTensor(_)) => Self::Other("a sparse tensor"),
            Some(type_proto::Value::Optional(_)) => Self::Other("an optional value"),
            Some(type_proto::Value::Opaque(_)) => Self::Other("an opaque value"),
            None => Self::Other("of no declared type"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GraphValue {
    pub name: String,
    pub id: ValueId,
    pub declared: Declared,
}

/// What the schema needs to know of a node: how values flow, and the categories and
/// class labels its attributes name.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    pub op_type: String,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    /// The texts an encoder knows (`OneHotEncoder`'s `cats_strings`, `LabelEncoder`'s
    /// string keys).
    pub categories: Option<Vec<String>>,
    /// A classifier's (or `ZipMap`'s) labels.
    pub class_labels: Option<ClassLabels>,
}

struct Step {
    kernel: Box<dyn Kernel>,
    inputs: Vec<Option<ValueId>>,
    outputs: Vec<ValueId>,
    label: String,
    /// The step is the last to read its first input, a value computed in the run: a
    /// view operator may take it rather than copy it.
    last_reads_first: bool,
}

pub struct Graph {
    /// The model's own texts; a run's texts get ids after them.
    pub strings: Vec<String>,
    constants: Vec<Option<Tensor>>,
    steps: Vec<Step>,
    pub inputs: Vec<GraphValue>,
    pub outputs: Vec<GraphValue>,
    pub nodes: Vec<NodeSummary>,
}

/// Why a graph cannot be planned.
#[derive(Debug, PartialEq)]
pub enum PlanError {
    /// Operators the engine does not run, as `domain:op_type (node 'name')`.
    Unsupported(Vec<String>),
    Invalid(String),
}

impl From<String> for PlanError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

/// The opset each domain of `model` imports (the standard domain under `""`).
fn opsets(model: &ModelProto) -> HashMap<String, i64> {
    model
        .opset_import
        .iter()
        .map(|o| (normal_domain(o.domain.as_deref().unwrap_or("")).to_string(), o.version.unwrap_or(1)))
        .collect()
}

fn normal_domain(domain: &str) -> &str {
    if domain == "ai.onnx" { "" } else { domain }
}

impl Graph {
    pub fn plan(model: &ModelProto) -> Result<Self, PlanError> {
        let graph: &GraphProto =
            model.graph.as_ref().ok_or_else(|| PlanError::Invalid("the model has no graph".into()))?;
        let opsets = opsets(model);
        let mut strings = Strings::new(&[]);
        let mut ids: HashMap<String, ValueId> = HashMap::new();
        let mut constants: Vec<Option<Tensor>> = Vec::new();
        let declare =
            |name: &str, ids: &mut HashMap<String, ValueId>, constants: &mut Vec<Option<Tensor>>| {
                let id = constants.len();
                ids.insert(name.to_string(), id);
                constants.push(None);
                id
            };

        if !graph.sparse_initializer.is_empty() {
            return Err("sparse initializers are not supported; save the model with dense ones"
                .to_string()
                .into());
        }
        for initializer in &graph.initializer {
            let name = initializer.name.clone().unwrap_or_default();
            let id = declare(&name, &mut ids, &mut constants);
            constants[id] = Some(Tensor::from_proto(initializer, &mut strings)?);
        }
        let mut inputs = Vec::new();
        for input in &graph.input {
            let name = input.name.clone().unwrap_or_default();
            // Older exports list initializers among the inputs too: those are constants.
            if ids.contains_key(&name) {
                continue;
            }
            let id = declare(&name, &mut ids, &mut constants);
            inputs.push(GraphValue { name, id, declared: Declared::from_proto(input.r#type.as_ref()) });
        }

        let mut steps = Vec::new();
        let mut nodes = Vec::new();
        let mut unsupported = Vec::new();
        for (index, node) in graph.node.iter().enumerate() {
            let op_type = node.op_type.as_deref().unwrap_or("");
            let domain = normal_domain(node.domain.as_deref().unwrap_or(""));
            let label = match node.name.as_deref().filter(|n| !n.is_empty()) {
                Some(name) => format!("{} (node {name:?})", qualified(domain, op_type)),
                None => format!("{} (node {index})", qualified(domain, op_type)),
            };
            let attrs = Attrs::new(&node.attribute);
            if let Some(reference) = attrs.references() {
                return Err(format!("{label} refers to a function attribute {reference:?}").into());
            }
            let node_inputs =
                node.input
                    .iter()
                    .map(|name| match name.as_str() {
                        "" => Ok(None),
                        name => ids.get(name).copied().map(Some).ok_or_else(|| {
                            format!("{label} reads {name:?}, which nothing before it computes")
                        }),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
            let class_labels = ClassLabels::from_attrs(&attrs);
            let categories = [attrs.strings("cats_strings"), attrs.strings("keys_strings")]
                .into_iter()
                .find(|c| !c.is_empty());

            // Aliases: an Identity's output is its input; a ZipMap's output (a list of
            // maps per row) is read as the probability matrix it was made from.
            let alias = match (domain, op_type) {
                ("", "Identity") | (ML_DOMAIN, "ZipMap") => node_inputs.first().copied().flatten(),
                _ => None,
            };
            let outputs = match alias {
                Some(source) => {
                    for name in &node.output {
                        ids.insert(name.clone(), source);
                    }
                    vec![source]
                }
                None => node.output.iter().map(|name| declare(name, &mut ids, &mut constants)).collect(),
            };
            nodes.push(NodeSummary {
                op_type: op_type.to_string(),
                inputs: node_inputs.clone(),
                outputs: outputs.clone(),
                categories,
                class_labels,
            });
            if alias.is_some() {
                continue;
            }
            let spec = NodeSpec { domain, op_type, opset: opsets.get(domain).copied().unwrap_or(1), attrs };
            match ops::build(&spec, &mut strings) {
                Ok(kernel) => {
                    steps.push(Step { kernel, inputs: node_inputs, outputs, label, last_reads_first: false })
                }
                Err(BuildError::Unsupported) => unsupported.push(label),
                Err(BuildError::Invalid(message)) => return Err(format!("{label}: {message}").into()),
            }
        }
        if !unsupported.is_empty() {
            return Err(PlanError::Unsupported(unsupported));
        }

        let outputs = graph
            .output
            .iter()
            .map(|output| {
                let name = output.name.clone().unwrap_or_default();
                let id = *ids.get(&name).ok_or_else(|| format!("output {name:?} is never computed"))?;
                Ok(GraphValue { name, id, declared: Declared::from_proto(output.r#type.as_ref()) })
            })
            .collect::<Result<Vec<_>, String>>()?;

        let mut planned = Self { strings: Vec::new(), constants, steps, inputs, outputs, nodes };
        planned.fold_constants(&mut strings)?;
        planned.strings = strings.into_added();
        Ok(planned)
    }

    /// Runs, once, every step whose inputs are all known, and keeps its outputs as
    /// constants: a converter's shape computations and reshaped weights cost nothing per
    /// batch.
    fn fold_constants(&mut self, strings: &mut Strings<'_>) -> Result<(), String> {
        let mut remaining = Vec::new();
        for step in std::mem::take(&mut self.steps) {
            let known = step.inputs.iter().flatten().all(|&id| self.constants[id].is_some());
            if !known {
                remaining.push(step);
                continue;
            }
            let inputs: Vec<Option<&Tensor>> =
                step.inputs.iter().map(|id| id.and_then(|id| self.constants[id].as_ref())).collect();
            let outputs = step.kernel.run(&inputs, strings).map_err(|e| format!("{}: {e}", step.label))?;
            for (id, tensor) in step.outputs.iter().zip(outputs) {
                self.constants[*id] = Some(tensor);
            }
        }
        self.steps = remaining;
        Ok(())
    }

    /// Drops the steps that none of `wanted` depends on.
    pub fn keep_only(&mut self, wanted: &[ValueId]) {
        let mut needed = vec![false; self.constants.len()];
        wanted.iter().for_each(|&id| needed[id] = true);
        let mut kept: Vec<Step> = Vec::new();
        for step in std::mem::take(&mut self.steps).into_iter().rev() {
            if step.outputs.iter().any(|&id| needed[id]) {
                step.inputs.iter().flatten().for_each(|&id| needed[id] = true);
                kept.push(step);
            }
        }
        kept.reverse();
        self.steps = kept;
        self.mark_last_reads(wanted);
    }

    /// Marks the steps that read a computed value last, and are not followed by a
    /// `wanted` output that is the same value.
    fn mark_last_reads(&mut self, wanted: &[ValueId]) {
        let mut read_later = vec![false; self.constants.len()];
        wanted.iter().for_each(|&id| read_later[id] = true);
        for step in self.steps.iter_mut().rev() {
            step.last_reads_first = match step.inputs.first().copied().flatten() {
                Some(id) => {
                    !read_later[id]
                        && self.constants[id].is_none()
                        && step.inputs.iter().flatten().filter(|&&i| i == id).count() == 1
                }
                None => false,
            };
            step.inputs.iter().flatten().for_each(|&id| read_later[id] = true);
        }
    }

    /// A known value: an initializer, or computed from initializers alone.
    pub fn constant(&self, id: ValueId) -> Option<&Tensor> {
        self.constants[id].as_ref()
    }

    /// Runs the plan on `feeds` (a tensor per graph input id) and returns `wanted`.
    pub fn run(
        &self,
        feeds: Vec<(ValueId, Tensor)>,
        wanted: &[ValueId],
        strings: &mut Strings<'_>,
    ) -> Result<Vec<Tensor>, String> {
        let mut values: Vec<Option<Tensor>> = vec![None; self.constants.len()];
        for (id, tensor) in feeds {
            values[id] = Some(tensor);
        }
        for step in &self.steps {
            let (outputs, view) = {
                let inputs: Vec<Option<&Tensor>> = step
                    .inputs
                    .iter()
                    .map(|id| id.and_then(|id| values[id].as_ref().or(self.constants[id].as_ref())))
                    .collect();
                match step.kernel.reshaped(&inputs) {
                    Some(shape) if step.last_reads_first => {
                        (Vec::new(), Some(shape.map_err(|e| format!("{}: {e}", step.label))?))
                    }
                    _ => {
                        (step.kernel.run(&inputs, strings).map_err(|e| format!("{}: {e}", step.label))?, None)
                    }
                }
            };
            let outputs = match view {
                Some(shape) => {
                    let first = step.inputs[0].expect("a view reads its first input");
                    let data = values[first].take().expect("computed before its reader").data;
                    vec![Tensor::new(shape, data).map_err(|e| format!("{}: {e}", step.label))?]
                }
                None => outputs,
            };
            if outputs.len() < step.outputs.len() {
                return Err(format!(
                    "{}: {} outputs where the graph reads {}",
                    step.label,
                    outputs.len(),
                    step.outputs.len()
                ));
            }
            for (id, tensor) in step.outputs.iter().zip(outputs) {
                values[*id] = Some(tensor);
            }
        }
        wanted
            .iter()
            .map(|&id| {
                values[id]
                    .as_ref()
                    .or(self.constants[id].as_ref())
                    .cloned()
                    .ok_or_else(|| "an output was not computed".to_string())
            })
            .collect()
    }
}

/// `op_type` for the standard domain, `domain:op_type` otherwise.
pub fn qualified(domain: &str, op_type: &str) -> String {
    if domain.is_empty() { op_type.to_string() } else { format!("{domain}:{op_type}") }
}
