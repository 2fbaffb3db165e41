//! The ONNX-ML feature operators: encoders (`OneHotEncoder`, `LabelEncoder`), scaling
//! and cleaning (`Scaler`, `Normalizer`, `Imputer`, `Binarizer`) and column selection
//! (`ArrayFeatureExtractor`, `FeatureVectorizer`). Each follows onnxruntime's CPU kernel,
//! including the types it converts its input to.

use super::shape::gather_typed;
use super::{BuildError, Kernel, NodeSpec, required};
use crate::tensor::{DType, Data, Strings, Tensor, by_dtype};
use rustc_hash::FxHashMap as HashMap;

/// Categories of a one-hot encoder, as texts or integers.
enum Categories {
    Text(HashMap<String, usize>),
    Int(HashMap<i64, usize>),
}

pub struct OneHotEncoder {
    categories: Categories,
    count: usize,
    /// An unseen value encodes as all zeros (`zeros = 1`, the default), or is an error.
    zeros_for_unseen: bool,
}

impl OneHotEncoder {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let texts = a.strings("cats_strings");
        let ints = a.ints("cats_int64s");
        let (count, categories) = match (texts.is_empty(), ints.is_empty()) {
            (false, true) => {
                (texts.len(), Categories::Text(texts.into_iter().enumerate().map(|(i, c)| (c, i)).collect()))
            }
            (true, false) => {
                (ints.len(), Categories::Int(ints.into_iter().enumerate().map(|(i, c)| (c, i)).collect()))
            }
            _ => {
                return Err(BuildError::Invalid(
                    "exactly one of cats_strings and cats_int64s must be set".into(),
                ));
            }
        };
        Ok(Self { categories, count, zeros_for_unseen: a.int("zeros", 1) != 0 })
    }
}

impl Kernel for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Tensor>], strings: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let positions: Vec<Option<usize>> = match (&self.categories, &x.data) {
            (Categories::Text(map), Data::Str(ids)) if ids.len() < strings.len() => {
                ids.iter().map(|&id| map.get(strings.get(id)).copied()).collect()
            }
            (Categories::Text(map), Data::Str(ids)) => {
                // A batch repeats its texts: each distinct one is looked up once.
                let mut seen: Vec<Option<Option<usize>>> = vec![None; strings.len()];
                ids.iter()
                    .map(|&id| *seen[id as usize].get_or_insert_with(|| map.get(strings.get(id)).copied()))
                    .collect()
            }
            (Categories::Int(map), Data::Str(_)) => {
                return Err(format!("{} categories for text input", map.len()));
            }
            // Numbers are truncated to integers; NaN matches nothing.
            (Categories::Int(map), _) => x
                .to_f64()?
                .iter()
                .map(|&v| if v.is_nan() { None } else { map.get(&(v as i64)).copied() })
                .collect(),
            (Categories::Text(_), other) => {
                return Err(format!("text categories for {} input", other.dtype().name()));
            }
        };
        let mut out = vec![0f32; positions.len() * self.count];
        for (i, position) in positions.iter().enumerate() {
            match position {
                Some(p) => out[i * self.count + p] = 1.0,
                None if self.zeros_for_unseen => {}
                None => return Err("a value outside the encoder's categories (zeros = 0)".into()),
            }
        }
        let mut shape = x.shape.clone();
        shape.push(self.count);
        Ok(vec![Tensor { shape, data: Data::F32(out) }])
    }
}

/// A per-column parameter given once for every column, or once per column.
fn per_column(values: &[f32], column: usize) -> f32 {
    if values.len() == 1 { values[0] } else { values[column] }
}

/// Checks that a per-column parameter fits rows of `columns` values.
fn check_columns(name: &str, values: &[f32], columns: usize) -> Result<(), String> {
    if values.len() == 1 || values.len() == columns {
        Ok(())
    } else {
        Err(format!("{name} has {} values for rows of {columns}", values.len()))
    }
}

pub struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        let (offset, scale) = (node.attrs.floats("offset"), node.attrs.floats("scale"));
        if offset.is_empty() || scale.is_empty() {
            return Err(BuildError::Invalid("Scaler needs both offset and scale".into()));
        }
        Ok(Self { offset, scale })
    }
}

impl Kernel for Scaler {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (_, columns) = x.as_matrix(true);
        check_columns("offset", &self.offset, columns)?;
        check_columns("scale", &self.scale, columns)?;
        let offset = |i: usize| per_column(&self.offset, i % columns);
        let scale = |i: usize| per_column(&self.scale, i % columns);
        // Double input is scaled in double precision, everything else in single.
        let out = match &x.data {
            Data::F64(v) => v
                .iter()
                .enumerate()
                .map(|(i, &v)| ((v - f64::from(offset(i))) * f64::from(scale(i))) as f32)
                .collect(),
            _ => x.f32s()?.iter().enumerate().map(|(i, &v)| (v - offset(i)) * scale(i)).collect(),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data: Data::F32(out) }])
    }
}

#[derive(Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

pub struct Normalizer(Norm);

impl Normalizer {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        Ok(Self(match node.attrs.string("norm", "MAX").as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => return Err(BuildError::Invalid(format!("unknown norm {other:?}"))),
        }))
    }
}

impl Kernel for Normalizer {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (_, columns) = x.as_matrix(true);
        let mut out = x.to_f32()?;
        for row in out.chunks_mut(columns.max(1)) {
            match self.0 {
                Norm::Max => {
                    let max = row.iter().copied().fold(f32::MIN, |m, v| if v > m { v } else { m });
                    if max != 0.0 {
                        row.iter_mut().for_each(|v| *v /= max);
                    }
                }
                Norm::L1 => {
                    let sum: f32 = row.iter().map(|v| v.abs()).sum();
                    if sum != 0.0 {
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                Norm::L2 => {
                    let sum: f32 = row.iter().map(|v| v * v).sum();
                    if sum != 0.0 {
                        row.iter_mut().for_each(|v| *v = (*v * *v / sum).sqrt().copysign(*v));
                    }
                }
            }
        }
        Ok(vec![Tensor { shape: x.shape.clone(), data: Data::F32(out) }])
    }
}

pub struct Imputer {
    floats: Vec<f32>,
    replaced_float: f32,
    ints: Vec<i64>,
    replaced_int: i64,
}

impl Imputer {
    pub fn new(node: &NodeSpec<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let imputer = Self {
            floats: a.floats("imputed_value_floats"),
            replaced_float: a.float("replaced_value_float", 0.0),
            ints: a.ints("imputed_value_int64s"),
            replaced_int: a.int("replaced_value_int64", 0),
        };
        if imputer.floats.is_empty() == imputer.ints.is_empty() {
            return Err(BuildError::Invalid(
                "exactly one of imputed_value_floats and imputed_value_int64s must be set".into(),
            ));
        }
        Ok(imputer)
    }
}

impl Kernel for Imputer {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let (_, columns) = x.as_matrix(true);
        let data = match &x.data {
            Data::F32(values) if !self.floats.is_empty() => {
                let replace =
                    |v: f32| v == self.replaced_float || (v.is_nan() && self.replaced_float.is_nan());
                let pick = |i: usize| imputed(&self.floats, columns, i);
                Data::F32(
                    values.iter().enumerate().map(|(i, &v)| if replace(v) { pick(i) } else { v }).collect(),
                )
            }
            Data::I64(values) if !self.ints.is_empty() => {
                let pick = |i: usize| imputed(&self.ints, columns, i);
                Data::I64(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| if v == self.replaced_int { pick(i) } else { v })
                        .collect(),
                )
            }
            other => return Err(format!("cannot impute {} input with these values", other.dtype().name())),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

/// The value imputed at element `i`: per column when there is one per column, else the
/// first everywhere (as onnxruntime, which does not check the count).
fn imputed<T: Copy>(values: &[T], columns: usize, i: usize) -> T {
    if values.len() == columns { values[i % columns] } else { values[0] }
}

pub struct Binarizer(f64);

impl Binarizer {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(f64::from(node.attrs.float("threshold", 0.0)))
    }
}

impl Kernel for Binarizer {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let t = self.0;
        let data = match &x.data {
            Data::F32(v) => Data::F32(v.iter().map(|&e| if f64::from(e) > t { 1.0 } else { 0.0 }).collect()),
            Data::F64(v) => Data::F64(v.iter().map(|&e| if e > t { 1.0 } else { 0.0 }).collect()),
            Data::I64(v) => Data::I64(v.iter().map(|&e| i64::from(e as f64 > t)).collect()),
            Data::I32(v) => Data::I32(v.iter().map(|&e| i32::from(f64::from(e) > t)).collect()),
            other => return Err(format!("cannot binarize {}", other.dtype().name())),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

pub struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        let picks = required(inputs, 1)?.to_i64()?;
        let columns = *x.shape.last().ok_or("cannot pick from a scalar")?;
        let picks = picks
            .iter()
            .map(|&p| {
                usize::try_from(p)
                    .ok()
                    .filter(|&p| p < columns)
                    .ok_or_else(|| format!("index {p} is out of range for {columns}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = x.len() / columns.max(1);
        let mut shape = if x.shape.len() == 1 { vec![1] } else { x.shape[..x.shape.len() - 1].to_vec() };
        shape.push(picks.len());
        // A gather along the last axis.
        let data = by_dtype!(x.dtype(), gather_typed(x, &picks, rows, columns, 1))?;
        Ok(vec![Tensor { shape, data }])
    }
}

pub struct FeatureVectorizer(Vec<usize>);

impl FeatureVectorizer {
    pub fn new(node: &NodeSpec<'_>) -> Self {
        Self(node.attrs.ints("inputdimensions").into_iter().map(|d| d.max(0) as usize).collect())
    }
}

impl Kernel for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Tensor>], _: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        if parts.len() != self.0.len() {
            return Err(format!("{} inputs for {} input dimensions", parts.len(), self.0.len()));
        }
        let rows = parts.first().map_or(0, |p| p.as_matrix(false).0);
        let width: usize = self.0.iter().sum();
        let mut out = vec![0f32; rows * width];
        let mut offset = 0;
        for (part, &dimension) in parts.iter().zip(&self.0) {
            let (part_rows, columns) = part.as_matrix(false);
            if part_rows != rows {
                return Err(format!("inputs of {part_rows} and {rows} rows"));
            }
            let values = part.to_f32()?;
            for r in 0..rows {
                // Fewer columns than declared leave zeros; more are cut.
                for c in 0..columns.min(dimension) {
                    out[r * width + offset + c] = values[r * columns + c];
                }
            }
            offset += dimension;
        }
        Ok(vec![Tensor { shape: vec![rows, width], data: Data::F32(out) }])
    }
}

/// Keys or values of a label encoder.
enum Table {
    Text(Vec<u32>),
    Int(Vec<i64>),
    Float(Vec<f32>),
}

pub struct LabelEncoder {
    keys: Table,
    values: Table,
    default: Table,
}

impl LabelEncoder {
    pub fn new(node: &NodeSpec<'_>, strings: &mut Strings<'_>) -> Result<Self, BuildError> {
        let a = &node.attrs;
        let mut intern =
            |texts: Vec<String>| Table::Text(texts.into_iter().map(|t| strings.add(t)).collect());
        if node.opset < 2 {
            // Version 1 maps texts to their index in classes_strings, or back.
            let classes = a.strings("classes_strings");
            let count = classes.len() as i64;
            let has_text_default = a.has("default_string");
            let texts = intern(classes);
            let indices = Table::Int((0..count).collect());
            let default_text = intern(vec![a.string("default_string", "_Unused")]);
            return Ok(if has_text_default {
                Self { keys: indices, values: texts, default: default_text }
            } else {
                Self { keys: texts, values: indices, default: Table::Int(vec![a.int("default_int64", -1)]) }
            });
        }
        if a.has("keys_tensor") || a.has("values_tensor") {
            return Err(BuildError::Invalid("tensor-valued keys (LabelEncoder 4) are not supported".into()));
        }
        let table = |prefix: &str, intern: &mut dyn FnMut(Vec<String>) -> Table| {
            if a.has(&format!("{prefix}_strings")) {
                Some(intern(a.strings(&format!("{prefix}_strings"))))
            } else if a.has(&format!("{prefix}_int64s")) {
                Some(Table::Int(a.ints(&format!("{prefix}_int64s"))))
            } else if a.has(&format!("{prefix}_floats")) {
                Some(Table::Float(a.floats(&format!("{prefix}_floats"))))
            } else {
                None
            }
        };
        let keys = table("keys", &mut intern).ok_or("LabelEncoder without keys".to_string())?;
        let values = table("values", &mut intern).ok_or("LabelEncoder without values".to_string())?;
        let default = match values {
            Table::Text(_) => intern(vec![a.string("default_string", "_Unused")]),
            Table::Int(_) => Table::Int(vec![a.int("default_int64", -1)]),
            Table::Float(_) => Table::Float(vec![a.float("default_float", -0.0)]),
        };
        if table_len(&keys) != table_len(&values) {
            return Err(BuildError::Invalid(format!(
                "{} keys for {} values",
                table_len(&keys),
                table_len(&values)
            )));
        }
        Ok(Self { keys, values, default })
    }
}

impl Kernel for LabelEncoder {
    fn run(&self, inputs: &[Option<&Tensor>], strings: &mut Strings<'_>) -> Result<Vec<Tensor>, String> {
        let x = required(inputs, 0)?;
        // The position of each input value among the keys.
        let positions: Vec<Option<usize>> = match (&self.keys, &x.data) {
            (Table::Text(keys), Data::Str(ids)) => {
                let mut map: HashMap<&str, usize> = HashMap::default();
                for (i, &k) in keys.iter().enumerate() {
                    map.entry(strings.get(k)).or_insert(i);
                }
                ids.iter().map(|&id| map.get(strings.get(id)).copied()).collect()
            }
            (Table::Int(keys), Data::I64(values)) => {
                let mut map: HashMap<i64, usize> = HashMap::default();
                for (i, &k) in keys.iter().enumerate() {
                    map.entry(k).or_insert(i);
                }
                values.iter().map(|v| map.get(v).copied()).collect()
            }
            (Table::Float(keys), Data::F32(values)) => values
                .iter()
                .map(|v| keys.iter().position(|k| k == v || (k.is_nan() && v.is_nan())))
                .collect(),
            (_, other) => {
                return Err(format!("keys of another type than the {} input", other.dtype().name()));
            }
        };
        let data = match (&self.values, &self.default) {
            (Table::Text(v), Table::Text(d)) => {
                Data::Str(positions.iter().map(|p| p.map_or(d[0], |p| v[p])).collect())
            }
            (Table::Int(v), Table::Int(d)) => {
                Data::I64(positions.iter().map(|p| p.map_or(d[0], |p| v[p])).collect())
            }
            (Table::Float(v), Table::Float(d)) => {
                Data::F32(positions.iter().map(|p| p.map_or(d[0], |p| v[p])).collect())
            }
            _ => unreachable!("the default has the values' type"),
        };
        Ok(vec![Tensor { shape: x.shape.clone(), data }])
    }
}

fn table_len(table: &Table) -> usize {
    match table {
        Table::Text(v) => v.len(),
        Table::Int(v) => v.len(),
        Table::Float(v) => v.len(),
    }
}
