//! A classifier read from an ONNX model: its schema, its labels, and scoring a batch of
//! rows into a label and a probability per label for each row.

use crate::graph::{ClassLabels, Graph, PlanError, ValueId};
use crate::manifest::Manifest;
use crate::proto;
use crate::schema::{self, Feed, FieldKind, FieldSpec};
use crate::tensor::{DType, Data, Strings, Tensor};
use std::collections::HashMap;

/// What the model says about itself, with the manifest's additions.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub fields: Vec<FieldSpec>,
    pub labels: Vec<String>,
    pub sample: Vec<(String, SampleValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Text(String),
    Number(f64),
}

/// One field of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Absent,
    Number(f64),
    /// An index into [`Batch::texts`].
    Text(u32),
}

/// Rows laid out by column: one column per field of [`Info::fields`], in that order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub rows: usize,
    pub texts: Vec<String>,
    pub columns: Vec<Vec<Cell>>,
}

/// Each row's label (an index into [`Info::labels`]) and probabilities, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub labels: Vec<u32>,
    pub probabilities: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScoreError {
    /// The caller's fault: row `row` cannot be scored.
    Invalid { row: usize, message: String },
    /// The model's: the graph failed on rows it accepted.
    Model(String),
}

/// Why a model cannot be served, worded for the person packaging it.
#[derive(Debug, PartialEq)]
pub enum LoadError {
    NotOnnx(String),
    Unsupported(Vec<String>),
    Invalid(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotOnnx(why) => write!(f, "not an ONNX model: {why}"),
            Self::Unsupported(nodes) => write!(
                f,
                "unsupported operator{}: {}; supported: {}",
                if nodes.len() == 1 { "" } else { "s" },
                nodes.join(", "),
                crate::ops::SUPPORTED.join(", ")
            ),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

impl From<PlanError> for LoadError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::Unsupported(nodes) => Self::Unsupported(nodes),
            PlanError::Invalid(why) => Self::Invalid(why),
        }
    }
}

impl From<String> for LoadError {
    fn from(why: String) -> Self {
        Self::Invalid(why)
    }
}

/// How the graph's label output maps to an index of the labels.
enum LabelOutput {
    /// By text; `by_id` answers for the model's own texts (where a classifier's label
    /// output takes its values) without hashing.
    Text {
        id: ValueId,
        by_text: HashMap<String, u32>,
        by_id: Vec<Option<u32>>,
    },
    Int(ValueId, HashMap<i64, u32>),
}

impl LabelOutput {
    fn id(&self) -> ValueId {
        match self {
            Self::Text { id, .. } | Self::Int(id, _) => *id,
        }
    }
}

pub struct Model {
    pub info: Info,
    graph: Graph,
    feeds: Vec<Feed>,
    probabilities: ValueId,
    label: Option<LabelOutput>,
    /// The id of the empty text, fed for a text field left out.
    empty_text: u32,
}

/// The protobuf tag of `ModelProto.ir_version` (field 1, a varint).
const IR_VERSION_TAG: u8 = 0x08;

/// How far from one a row's probabilities may sum and still be rescaled to one: what
/// float arithmetic loses, not what a wrong model gets wrong.
const SUM_ROUNDING: f64 = 1e-4;

impl Model {
    /// Reads a model: decodes it, plans its graph, and works out its schema and labels.
    pub fn load(bytes: Vec<u8>, manifest: &Manifest) -> Result<Self, LoadError> {
        // Exporters write the IR version first: its tag is the first byte of a model.
        let starts_like_onnx = bytes.first() == Some(&IR_VERSION_TAG);
        let proto = proto::decode(bytes.into()).map_err(|e| {
            LoadError::NotOnnx(match e.to_string() {
                _ if !starts_like_onnx => {
                    "it does not start as an ONNX file does (with its IR version)".into()
                }
                why if why.contains("buffer underflow") => {
                    "the file ends in the middle of a value (truncated?)".into()
                }
                why => format!("its protobuf does not decode ({why})"),
            })
        })?;
        if proto.graph.as_ref().is_none_or(|g| g.node.is_empty()) || proto.ir_version.is_none() {
            return Err(LoadError::NotOnnx("it has no graph of operators".into()));
        }
        if proto.opset_import.is_empty() {
            return Err(LoadError::NotOnnx("it imports no operator set (is the file truncated?)".into()));
        }
        if !proto.functions.is_empty() {
            return Err(LoadError::Invalid("models with local functions are not supported".into()));
        }
        let mut graph = Graph::plan(&proto)?;
        let (fields, feeds) = schema::fields(&graph, manifest)?;
        let probabilities = probabilities_output(&graph, manifest)?;
        let classes = class_labels(&graph, probabilities)?;
        let labels = match (&manifest.labels, &classes) {
            (Some(names), Some(classes)) if names.len() != classes.len() => {
                return Err(format!(
                    "the manifest names {} labels for {} classes",
                    names.len(),
                    classes.len()
                )
                .into());
            }
            (Some(names), _) => names.clone(),
            (None, Some(classes)) => classes.names(),
            (None, None) => {
                return Err(
                    "cannot tell the class labels from the graph: name them in the manifest (\"labels\")"
                        .to_string()
                        .into(),
                );
            }
        };
        let label = classes.as_ref().and_then(|classes| label_output(&graph, probabilities, classes));
        let mut wanted = vec![probabilities];
        wanted.extend(label.as_ref().map(LabelOutput::id));
        graph.keep_only(&wanted);
        let empty_text = u32::try_from(graph.strings.len()).expect("fewer than 2^32 texts");
        graph.strings.push(String::new());

        let sample = sample(&fields, manifest)?;
        let info = Info {
            name: manifest.name.clone().unwrap_or_else(|| "onnx-model".into()),
            version: manifest.version.clone().unwrap_or_else(|| match proto.model_version {
                Some(v) if v > 0 => v.to_string(),
                _ => "1".into(),
            }),
            description: manifest.description.clone().unwrap_or_else(|| describe(&proto)),
            fields,
            labels,
            sample,
        };
        Ok(Self { info, graph, feeds, probabilities, label, empty_text })
    }

    /// Scores a batch.
    pub fn score(&self, batch: Batch) -> Result<Scores, ScoreError> {
        let Batch { rows, texts, columns } = batch;
        if columns.len() != self.info.fields.len() || columns.iter().any(|c| c.len() != rows) {
            return Err(ScoreError::Model(format!(
                "expected {} columns of {rows} cells, one per field",
                self.info.fields.len()
            )));
        }
        let text_base = u32::try_from(self.graph.strings.len()).expect("fewer than 2^32 texts");
        let text_count = texts.len();
        let mut strings = Strings::with_added(&self.graph.strings, texts);
        let mut feeds = Vec::with_capacity(self.feeds.len());
        for feed in &self.feeds {
            feeds.push((feed.id, self.feed(feed, rows, &columns, text_base, text_count)?));
        }
        let mut wanted = vec![self.probabilities];
        wanted.extend(self.label.as_ref().map(LabelOutput::id));
        let outputs = self.graph.run(feeds, &wanted, &mut strings).map_err(ScoreError::Model)?;
        let n_labels = self.info.labels.len();
        let mut probabilities =
            outputs[0].to_f64().map_err(|e| ScoreError::Model(format!("probabilities: {e}")))?;
        if probabilities.len() != rows * n_labels {
            return Err(ScoreError::Model(format!(
                "the probability output has shape {:?}, not [{rows}, {n_labels}]",
                outputs[0].shape
            )));
        }
        for row in probabilities.chunks_mut(n_labels) {
            let sum: f64 = row.iter().sum();
            if (sum - 1.0).abs() <= SUM_ROUNDING {
                row.iter_mut().for_each(|p| *p /= sum);
            }
        }
        let labels: Option<Vec<u32>> = match (&self.label, outputs.get(1)) {
            (Some(LabelOutput::Text { by_text, by_id, .. }), Some(tensor)) => match &tensor.data {
                Data::Str(ids) => ids
                    .iter()
                    .map(|&id| match by_id.get(id as usize) {
                        Some(index) => *index,
                        None => by_text.get(strings.get(id)).copied(),
                    })
                    .collect(),
                _ => None,
            },
            (Some(LabelOutput::Int(_, map)), Some(tensor)) => tensor
                .to_i64()
                .ok()
                .map(|values| values.iter().map(|v| map.get(v).copied()).collect())
                .unwrap_or(None),
            _ => None,
        };
        let labels = match labels {
            Some(labels) => labels,
            None if self.label.is_some() => {
                return Err(ScoreError::Model("the label output names a class outside the labels".into()));
            }
            None => probabilities.chunks(n_labels).map(argmax).collect(),
        };
        if labels.len() != rows {
            return Err(ScoreError::Model(format!("{} labels for {rows} rows", labels.len())));
        }
        Ok(Scores { labels, probabilities })
    }

    /// The tensor of one graph input, filled column by column. A cell that does not
    /// fit its field fails the batch with the first such row, as a row-by-row check would.
    fn feed(
        &self,
        feed: &Feed,
        rows: usize,
        columns: &[Vec<Cell>],
        text_base: u32,
        texts: usize,
    ) -> Result<Tensor, ScoreError> {
        let width = feed.fields.len();
        let shape = if feed.vector { vec![rows] } else { vec![rows, width] };
        let mut failed = false;
        let data = if feed.dtype == DType::Str {
            let mut out = vec![self.empty_text; rows * width];
            for (c, &field) in feed.fields.iter().enumerate() {
                for (r, cell) in columns[field].iter().enumerate() {
                    match *cell {
                        Cell::Text(t) if (t as usize) < texts => out[r * width + c] = text_base + t,
                        Cell::Absent if !self.info.fields[field].required => {}
                        _ => failed = true,
                    }
                }
            }
            Data::Str(out)
        } else {
            let mut out = vec![f64::NAN; rows * width];
            for (c, &field) in feed.fields.iter().enumerate() {
                for (r, cell) in columns[field].iter().enumerate() {
                    match *cell {
                        Cell::Number(x) => out[r * width + c] = x,
                        Cell::Absent if !self.info.fields[field].required => {}
                        _ => failed = true,
                    }
                }
            }
            match feed.dtype {
                DType::F64 => Data::F64(out),
                DType::F32 => Data::F32(out.iter().map(|&x| x as f32).collect()),
                DType::I64 | DType::I32 => {
                    let max = if feed.dtype == DType::I64 { 9.007e15 } else { f64::from(i32::MAX) };
                    failed |= out.iter().any(|x| x.fract() != 0.0 || x.abs() > max);
                    if feed.dtype == DType::I64 {
                        Data::I64(out.iter().map(|&x| x as i64).collect())
                    } else {
                        Data::I32(out.iter().map(|&x| x as i32).collect())
                    }
                }
                DType::Str | DType::Bool => {
                    unreachable!("text is fed above; schema::fields refuses bool inputs")
                }
            }
        };
        if failed {
            return Err(self.first_invalid(feed, rows, columns, texts));
        }
        Ok(Tensor { shape, data })
    }

    /// The first row (and in it the first field) of `feed` that does not fit.
    fn first_invalid(&self, feed: &Feed, rows: usize, columns: &[Vec<Cell>], texts: usize) -> ScoreError {
        let whole = matches!(feed.dtype, DType::I64 | DType::I32);
        let largest = if feed.dtype == DType::I64 { 9.007e15 } else { f64::from(i32::MAX) };
        let check = |row: usize, field: usize| -> Option<ScoreError> {
            let spec = &self.info.fields[field];
            let name = &spec.name;
            let invalid = |message: String| Some(ScoreError::Invalid { row, message });
            match (spec.kind, columns[field][row]) {
                (_, Cell::Absent) if spec.required => invalid(format!("missing required field \"{name}\"")),
                (FieldKind::Number, Cell::Text(_)) => {
                    invalid(format!("field \"{name}\" must be a number, got text"))
                }
                (FieldKind::Text, Cell::Number(_)) => {
                    invalid(format!("field \"{name}\" must be text, got a number"))
                }
                (FieldKind::Text, Cell::Text(t)) if t as usize >= texts => {
                    Some(ScoreError::Model(format!("text {t} is not in the batch")))
                }
                (FieldKind::Number, Cell::Number(x)) if whole && x.fract() != 0.0 => {
                    invalid(format!("field \"{name}\" must be a whole number, got {x}"))
                }
                (FieldKind::Number, Cell::Number(x)) if whole && x.abs() > largest => {
                    invalid(format!("field \"{name}\" is out of range for the model, got {x}"))
                }
                _ => None,
            }
        };
        (0..rows)
            .find_map(|row| feed.fields.iter().find_map(|&field| check(row, field)))
            .unwrap_or_else(|| ScoreError::Model("a row failed its checks but none was found".into()))
    }
}

fn argmax(row: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = i;
        }
    }
    best as u32
}

fn describe(proto: &proto::ModelProto) -> String {
    let producer = proto.producer_name.as_deref().filter(|p| !p.is_empty()).unwrap_or("an unknown exporter");
    let version = proto.producer_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    match proto.doc_string.as_deref().filter(|d| !d.is_empty()) {
        Some(doc) => doc.to_string(),
        None => format!("ONNX model exported by {producer}{version}"),
    }
}

/// The graph output that holds the class probabilities: a float tensor, or what a
/// `ZipMap` turned into a list of maps.
fn probabilities_output(graph: &Graph, manifest: &Manifest) -> Result<ValueId, String> {
    use crate::graph::Declared;
    let from_zipmap = |id: ValueId| graph.nodes.iter().any(|n| n.op_type == "ZipMap" && n.outputs == [id]);
    let candidates: Vec<_> = graph
        .outputs
        .iter()
        .filter(|o| match &o.declared {
            // One column per label; a single column is a regressor's (or a score's).
            Declared::Tensor { elem_type, dims } => {
                matches!(DType::from_onnx(*elem_type), Some(DType::F32 | DType::F64))
                    && !matches!(dims.as_deref(), Some([_, Some(1)]) | Some([_]))
            }
            Declared::Other(_) => from_zipmap(o.id),
        })
        .collect();
    if let Some(name) = &manifest.probabilities_output {
        return graph.outputs.iter().find(|o| &o.name == name).map(|o| o.id).ok_or_else(|| {
            format!("the manifest's probabilities_output {name:?} is not an output of the graph")
        });
    }
    match candidates.as_slice() {
        [] => Err("no output holds class probabilities (a column per label): predict-host serves classifiers".into()),
        [only] => Ok(only.id),
        several => several.iter().find(|o| o.name.to_lowercase().contains("prob")).map(|o| o.id).ok_or_else(|| {
            let names: Vec<&str> = several.iter().map(|o| o.name.as_str()).collect();
            format!("several outputs could hold the probabilities ({names:?}): name one in the manifest (\"probabilities_output\")")
        }),
    }
}

/// The class labels, from the `ZipMap` or classifier that produced `probabilities`,
/// following it back through the operators that rescale it.
fn class_labels(graph: &Graph, probabilities: ValueId) -> Result<Option<ClassLabels>, String> {
    let mut id = probabilities;
    for _ in 0..16 {
        let Some(node) = graph.nodes.iter().rev().find(|n| n.outputs.contains(&id)) else { break };
        if let Some(labels) = &node.class_labels {
            return Ok(Some(labels.clone()));
        }
        match node.inputs.first().copied().flatten() {
            Some(input) if input != id => id = input,
            _ => break,
        }
    }
    // A classifier written with standard operators picks its label from a constant
    // list of class names; that list is the labels.
    for output in &graph.outputs {
        if output.id == probabilities {
            continue;
        }
        let mut id = output.id;
        for _ in 0..16 {
            let Some(node) = graph.nodes.iter().rev().find(|n| n.outputs.contains(&id)) else { break };
            let names =
                node.inputs.iter().flatten().filter_map(|&i| graph.constant(i)).find_map(|t| match &t.data {
                    Data::Str(ids) if t.shape.len() == 1 => {
                        Some(ids.iter().map(|&i| graph.strings[i as usize].clone()).collect())
                    }
                    _ => None,
                });
            if let Some(names) = names {
                return Ok(Some(ClassLabels::Text(names)));
            }
            match node.inputs.first().copied().flatten() {
                Some(input) if input != id => id = input,
                _ => break,
            }
        }
    }
    Ok(None)
}

/// The output that holds each row's label, when its values can be mapped to `classes`.
fn label_output(graph: &Graph, probabilities: ValueId, classes: &ClassLabels) -> Option<LabelOutput> {
    use crate::graph::Declared;
    let output = graph.outputs.iter().find(|o| {
        o.id != probabilities
            && matches!(o.declared, Declared::Tensor { elem_type, .. }
                if matches!(DType::from_onnx(elem_type), Some(DType::Str | DType::I64 | DType::I32)))
    })?;
    let index = |i: usize| u32::try_from(i).expect("at most 2^32 labels");
    Some(match classes {
        ClassLabels::Text(names) => {
            let by_text: HashMap<String, u32> =
                names.iter().enumerate().map(|(i, n)| (n.clone(), index(i))).collect();
            let by_id = graph.strings.iter().map(|text| by_text.get(text).copied()).collect();
            LabelOutput::Text { id: output.id, by_text, by_id }
        }
        ClassLabels::Int(values) => {
            LabelOutput::Int(output.id, values.iter().enumerate().map(|(i, &v)| (v, index(i))).collect())
        }
    })
}

/// The sample row: the manifest's values, and for other fields their first category or 0.
fn sample(fields: &[FieldSpec], manifest: &Manifest) -> Result<Vec<(String, SampleValue)>, String> {
    let given = manifest.sample.clone().unwrap_or_default();
    if let Some(unknown) = given.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
        return Err(format!("the manifest's sample gives {unknown:?}, which is not a field"));
    }
    fields
        .iter()
        .map(|field| {
            let value = match (field.kind, given.get(&field.name)) {
                (FieldKind::Text, Some(serde_json::Value::String(s))) => SampleValue::Text(s.clone()),
                (FieldKind::Number, Some(serde_json::Value::Number(n))) => {
                    SampleValue::Number(n.as_f64().ok_or("a sample number out of range")?)
                }
                (_, Some(other)) => {
                    return Err(format!(
                        "the manifest's sample gives {} for {:?}, a {:?} field",
                        other, field.name, field.kind
                    ));
                }
                (FieldKind::Text, None) => {
                    SampleValue::Text(field.categories.first().cloned().unwrap_or_default())
                }
                (FieldKind::Number, None) => SampleValue::Number(0.0),
            };
            Ok((field.name.clone(), value))
        })
        .collect()
}
