//! The JSON header of a V2 REST request, read in one pass into the members the server
//! reads: the request's and each input tensor's, each member a JSON value, every other
//! member skipped unread.
//!
//! Read whole as a `Value`, the header became a map for the request and one per input
//! tensor, and serde_json's maps keep insertion order in this build (the OpenAPI document
//! needs it) by hashing every key: that was a fifth of the host's CPU on a V2 request
//! (BENCHMARKS.md). Here no map is built; `tensors` names what does not fit.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// A JSON value as a [`Reader`] reads it.
pub(super) enum Node {
    /// An object: the members named by the reader's keys, in their order, each as given
    /// (the last, for a member given twice); and its `inputs`, if the reader reads them.
    Object { members: Vec<Option<Value>>, inputs: Option<Box<Node>> },
    /// An array: its elements, each read by the reader's element reader.
    Array(Vec<Node>),
    /// Anything else: what it is (`null`, `a string`...).
    Other(&'static str),
}

impl Node {
    /// What the value is, as errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Object { .. } => "an object",
            Self::Array(_) => "an array",
            Self::Other(kind) => kind,
        }
    }
}

/// The members of a request the server reads, in the order [`read`] gives them.
pub(super) const REQUEST_KEYS: [&str; 3] = ["id", "parameters", "outputs"];
/// The members of an input tensor the server reads, in the order [`read`] gives them.
pub(super) const INPUT_KEYS: [&str; 5] = ["name", "shape", "datatype", "parameters", "data"];

/// What to read of a value: an object's members by name (and its `inputs`, with their
/// own reader), or an array's elements.
pub(super) struct Reader {
    keys: &'static [&'static str],
    inputs: Option<&'static Reader>,
    elements: &'static Reader,
}

/// Reads only what a value is.
static SKIP: Reader = Reader { keys: &[], inputs: None, elements: &SKIP };
static INPUT: Reader = Reader { keys: &INPUT_KEYS, inputs: None, elements: &SKIP };
static INPUTS: Reader = Reader { keys: &[], inputs: None, elements: &INPUT };
static REQUEST: Reader = Reader { keys: &REQUEST_KEYS, inputs: Some(&INPUTS), elements: &SKIP };

/// Reads a request's JSON header.
pub(super) fn read(header: &[u8]) -> serde_json::Result<Node> {
    let mut json = serde_json::Deserializer::from_slice(header);
    let node = (&REQUEST).deserialize(&mut json)?;
    json.end()?;
    Ok(node)
}

impl<'de> DeserializeSeed<'de> for &'static Reader {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &'static Reader {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = vec![None; self.keys.len()];
        let mut inputs = None;
        while let Some(key) = map.next_key_seed(Key(self))? {
            match key {
                Member::Named(i) => members[i] = Some(map.next_value()?),
                Member::Inputs(reader) => inputs = Some(Box::new(map.next_value_seed(reader)?)),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Node::Object { members, inputs })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(element) = seq.next_element_seed(self.elements)? {
            elements.push(element);
        }
        Ok(Node::Array(elements))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Other("a string"))
    }
}

/// An object's member, by name.
enum Member {
    /// The reader's `i`th key.
    Named(usize),
    /// `inputs`, read by this reader.
    Inputs(&'static Reader),
    Other,
}

/// Reads a member's name as `Member` for the reader of its object.
struct Key(&'static Reader);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Member;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Member, E> {
        Ok(match (self.0.keys.iter().position(|key| *key == name), self.0.inputs) {
            (Some(i), _) => Member::Named(i),
            (None, Some(reader)) if name == "inputs" => Member::Inputs(reader),
            (None, _) => Member::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn members(node: Node) -> Vec<Option<Value>> {
        match node {
            Node::Object { members, .. } => members,
            other => panic!("not an object: {}", other.kind()),
        }
    }

    #[test]
    fn reads_the_members_it_names_and_skips_the_rest() {
        let body = r#"{
            "extra": {"deep": [1, 2, {"x": null}]},
            "id": "a\"b",
            "inputs": [
                {"name": "SPEND", "shape": [1], "datatype": "FP64", "data": [125.5], "other": true},
                "not an object",
                {"name": "first", "n\u0061me": "last"}
            ],
            "outputs": [{"name": "label"}]
        }"#;
        let Node::Object { members: request, inputs } = read(body.as_bytes()).unwrap() else { panic!() };
        assert_eq!(request, vec![Some(json!("a\"b")), None, Some(json!([{"name": "label"}]))]);
        let Some(Node::Array(inputs)) = inputs.map(|b| *b) else { panic!("inputs not read as an array") };
        let mut inputs = inputs.into_iter();
        let first = members(inputs.next().unwrap());
        assert_eq!(
            first,
            vec![Some(json!("SPEND")), Some(json!([1])), Some(json!("FP64")), None, Some(json!([125.5]))]
        );
        assert_eq!(inputs.next().unwrap().kind(), "a string");
        assert_eq!(
            members(inputs.next().unwrap())[0],
            Some(json!("last")),
            "the last of a member given twice"
        );
    }

    #[test]
    fn names_what_is_not_an_object_and_refuses_what_is_not_json() {
        for (body, kind) in [
            ("[1]", "an array"),
            ("null", "null"),
            ("true", "a boolean"),
            ("-1", "a number"),
            ("\"x\"", "a string"),
        ] {
            assert_eq!(read(body.as_bytes()).unwrap().kind(), kind, "{body}");
        }
        let Node::Object { inputs, .. } = read(br#"{"inputs": 3}"#).unwrap() else { panic!() };
        assert_eq!(inputs.unwrap().kind(), "a number");
        for body in ["", "{", r#"{"inputs": [}"#, "{} {}", r#"{"a" 1}"#] {
            assert!(read(body.as_bytes()).is_err(), "{body}");
        }
    }
}
