//! A node's attributes, read by name with the operator's defaults. Every error names
//! the attribute, so a refusal at packaging time points at what is wrong.

use crate::proto::{AttributeProto, TensorProto};
use crate::tensor::{Strings, Tensor, utf8};

pub struct Attrs<'a> {
    list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    pub fn new(list: &'a [AttributeProto]) -> Self {
        Self { list }
    }

    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.list.iter().find(|a| a.name.as_deref() == Some(name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.find(name).and_then(|a| a.i).unwrap_or(default)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.find(name).and_then(|a| a.f).unwrap_or(default)
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.find(name).and_then(|a| a.s.as_deref()).map_or_else(|| default.to_string(), utf8)
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.find(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    pub fn floats(&self, name: &str) -> Vec<f32> {
        self.find(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.raw_strings(name).iter().map(|s| utf8(s)).collect()
    }

    /// The texts of `name` as bytes, without copying them.
    pub fn raw_strings(&self, name: &str) -> &'a [bytes::Bytes] {
        self.find(name).map_or(&[], |a| a.strings.as_slice())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.find(name).and_then(|a| a.t.as_ref())
    }

    /// `name` as doubles: from `<name>_as_tensor` when present (ONNX-ML 3 keeps double
    /// precision there), else from the float list `name`.
    pub fn doubles(&self, name: &str) -> Result<Vec<f64>, String> {
        match self.tensor(&format!("{name}_as_tensor")) {
            Some(proto) => Tensor::from_proto(proto, &mut Strings::new(&[]))
                .and_then(|t| t.to_f64())
                .map_err(|e| format!("attribute {name}_as_tensor: {e}")),
            None => Ok(self.floats(name).into_iter().map(f64::from).collect()),
        }
    }

    /// The first attribute that refers to an enclosing function's, if any (not supported).
    pub fn references(&self) -> Option<&'a str> {
        self.list.iter().find_map(|a| a.ref_attr_name.as_deref())
    }
}
