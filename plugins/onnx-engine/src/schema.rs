//! The request schema a graph implies: one field per graph input (or per column of an
//! `[N, K]` input), text or number by the input's element type, and the categories of a
//! text field found where an encoder reads it.

use crate::graph::{Declared, Graph, GraphValue, ValueId};
use crate::manifest::Manifest;
use crate::tensor::DType;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub kind: FieldKind,
    pub required: bool,
    /// Known values of a text field; anything else scores as unseen.
    pub categories: Vec<String>,
    pub description: String,
}

/// How one graph input is filled from a batch.
#[derive(Debug, Clone)]
pub struct Feed {
    pub id: ValueId,
    pub dtype: DType,
    /// Declared as `[N]` rather than `[N, K]`.
    pub vector: bool,
    /// The field of each column, as indices into the schema's fields.
    pub fields: Vec<usize>,
}

/// The fields of `graph`, and how its inputs are fed from them.
pub fn fields(graph: &Graph, manifest: &Manifest) -> Result<(Vec<FieldSpec>, Vec<Feed>), String> {
    let mut fields = Vec::new();
    let mut feeds = Vec::new();
    for input in &graph.inputs {
        let (dtype, columns) = input_layout(input)?;
        let names: Vec<String> = match manifest.columns.get(&input.name) {
            Some(names) if names.len() == columns.unwrap_or(1) => names.clone(),
            Some(names) => {
                return Err(format!(
                    "the manifest names {} columns for input {:?}, which has {}",
                    names.len(),
                    input.name,
                    columns.unwrap_or(1)
                ));
            }
            None if columns.is_none_or(|k| k == 1) => vec![input.name.clone()],
            None => (0..columns.unwrap_or(1)).map(|i| format!("{}_{i}", input.name)).collect(),
        };
        let kind = if dtype == DType::Str { FieldKind::Text } else { FieldKind::Number };
        let mut feed = Feed { id: input.id, dtype, vector: columns.is_none(), fields: Vec::new() };
        for (column, name) in names.into_iter().enumerate() {
            let categories = if kind == FieldKind::Text {
                categories(graph, input.id, columns.map(|_| column))
            } else {
                Vec::new()
            };
            let note = manifest.fields.get(&name);
            let required = note.and_then(|n| n.required).unwrap_or(true);
            if !required && matches!(dtype, DType::I64 | DType::I32) {
                return Err(format!(
                    "field {name:?} is an integer input, which cannot be left out of a request"
                ));
            }
            let description =
                note.and_then(|n| n.description.clone()).unwrap_or_else(|| describe(dtype, &categories));
            feed.fields.push(fields.len());
            fields.push(FieldSpec { name, kind, required, categories, description });
        }
        feeds.push(feed);
    }
    let mut seen = HashSet::new();
    if let Some(duplicate) = fields.iter().find(|f| !seen.insert(f.name.as_str())) {
        return Err(format!("two inputs map to the field {:?}", duplicate.name));
    }
    if let Some(unknown) = manifest.fields.keys().find(|name| !seen.contains(name.as_str())) {
        return Err(format!(
            "the manifest describes the field {unknown:?}, which the model has no input for"
        ));
    }
    Ok((fields, feeds))
}

/// The element type of an input, and its column count when it is `[N, K]` (`None` for
/// `[N]`); anything else cannot take rows of fields.
fn input_layout(input: &GraphValue) -> Result<(DType, Option<usize>), String> {
    let name = &input.name;
    let (elem_type, dims) = match &input.declared {
        Declared::Tensor { elem_type, dims } => (*elem_type, dims),
        Declared::Other(what) => {
            return Err(format!(
                "input {name:?} is {what}: only tensors of one row per example map to fields"
            ));
        }
    };
    let dtype = DType::from_onnx(elem_type)
        .filter(|d| matches!(d, DType::Str | DType::F32 | DType::F64 | DType::I64 | DType::I32))
        .ok_or_else(|| {
            format!(
                "input {name:?} is a tensor of {}: only text and number inputs map to fields",
                DType::onnx_name(elem_type)
            )
        })?;
    let shape_text = |dims: &[Option<i64>]| {
        let dims: Vec<String> =
            dims.iter().map(|d| d.map_or_else(|| "N".into(), |d| d.to_string())).collect();
        format!("[{}]", dims.join(", "))
    };
    match dims.as_deref() {
        None | Some([_]) => Ok((dtype, None)),
        Some([_, Some(k)]) if *k >= 1 => Ok((dtype, Some(*k as usize))),
        Some(dims @ [_, None]) => Err(format!(
            "input {name:?} has shape {}: its number of columns is not fixed, so it cannot map to fields",
            shape_text(dims)
        )),
        Some(dims) => Err(format!(
            "input {name:?} has shape {}: an image or sequence input cannot map to fields \
             (inputs of one value per row, [N] or [N, 1], or a row of values, [N, K], can)",
            shape_text(dims)
        )),
    }
}

fn describe(dtype: DType, categories: &[String]) -> String {
    match dtype {
        DType::Str if categories.is_empty() => "text".into(),
        DType::Str => format!("text: one of {} known categories (others score as unseen)", categories.len()),
        DType::I64 | DType::I32 => format!("whole number ({})", dtype.name()),
        _ => format!("number ({})", dtype.name()),
    }
}

/// The categories encoders know for column `column` of the text input `start` (or the
/// whole input, for `None`), following it through the operators that only move it.
fn categories(graph: &Graph, start: ValueId, column: Option<usize>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut work = vec![(start, column)];
    let mut visited = HashSet::new();
    while let Some((id, column)) = work.pop() {
        if !visited.insert((id, column)) {
            continue;
        }
        for node in graph.nodes.iter().filter(|n| n.inputs.first() == Some(&Some(id))) {
            let Some(&out) = node.outputs.first() else { continue };
            match node.op_type.as_str() {
                "OneHotEncoder" | "LabelEncoder" | "CategoryMapper" => {
                    for category in node.categories.iter().flatten() {
                        if !found.contains(category) {
                            found.push(category.clone());
                        }
                    }
                }
                "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Cast" => {
                    work.push((out, column))
                }
                "ArrayFeatureExtractor" => {
                    let picked = node.inputs.get(1).copied().flatten().and_then(|i| graph.constant(i));
                    let picked = picked.and_then(|t| t.to_i64().ok());
                    match (column, picked) {
                        (None, _) => work.push((out, None)),
                        (Some(c), Some(picked)) => {
                            if let Some(position) = picked.iter().position(|&p| p == c as i64) {
                                work.push((out, Some(position)));
                            }
                        }
                        (Some(_), None) => {}
                    }
                }
                _ => {}
            }
        }
    }
    found
}
