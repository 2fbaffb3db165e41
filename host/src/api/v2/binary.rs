//! The binary tensor data extension, which Triton's clients use by default: a request body
//! is a JSON header of `Inference-Header-Content-Length` bytes, then the raw elements of
//! each input that declares a `binary_data_size`, in input order; outputs asked for with
//! `binary_data` come back laid out the same way. Numbers are little-endian; a BYTES
//! element is a 4-byte little-endian length, then its bytes.

use super::failure::{Failure, bad};
use super::schema::{Datatype, InferInputTensor};
use crate::runtime::Value as WitValue;
use axum::http::HeaderMap;
use bytes::Bytes;

/// The header that gives the length of the JSON part of a body, request or response.
pub(super) const HEADER_LENGTH: &str = "inference-header-content-length";

/// Splits a request body into its JSON header and the binary data after it (none when
/// the request does not use the extension).
pub(super) fn split(headers: &HeaderMap, body: Bytes) -> Result<(Bytes, Bytes), Failure> {
    let Some(value) = headers.get(HEADER_LENGTH) else {
        return Ok((body, Bytes::new()));
    };
    let Some(length) = value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()) else {
        return bad(format!("Inference-Header-Content-Length must be a count of bytes, got {value:?}"));
    };
    if length > body.len() {
        return bad(format!(
            "Inference-Header-Content-Length is {length}, but the body holds only {} bytes",
            body.len()
        ));
    }
    let binary = body.slice(length..);
    Ok((body.slice(..length), binary))
}

/// Gives each input that declares a `binary_data_size` its bytes, in input order; all
/// the binary data must be claimed.
pub(super) fn attach(inputs: &mut [InferInputTensor], binary: Bytes) -> Result<(), Failure> {
    let mut offset = 0;
    for input in inputs.iter_mut() {
        let Some(size) = input.binary_size else { continue };
        let left = binary.len() - offset;
        if size > left {
            return bad(format!(
                "input \"{}\" declares {size} bytes of binary data, but only {left} are left in the body",
                input.name
            ));
        }
        input.binary = Some(binary.slice(offset..offset + size));
        offset += size;
    }
    if offset != binary.len() {
        return bad(format!(
            "the body holds {} bytes of binary data after the {offset} that its inputs declare",
            binary.len() - offset
        ));
    }
    Ok(())
}

/// The `rows` elements of a binary input, as the plugin takes them.
pub(super) fn decode(
    name: &str,
    datatype: Datatype,
    data: &[u8],
    rows: usize,
) -> Result<Vec<WitValue>, Failure> {
    if datatype == Datatype::Bytes {
        return decode_strings(name, data, rows);
    }
    let width = datatype.width();
    if data.len() != rows * width {
        return bad(format!(
            "input \"{name}\" ({}) has {rows} element(s) of {width} bytes, {} bytes in all, \
             but its binary data is {} bytes",
            datatype.as_str(),
            rows * width,
            data.len()
        ));
    }
    data.chunks_exact(width)
        .enumerate()
        .map(|(i, element)| {
            let x = datatype.read_le(element);
            if x.is_finite() {
                Ok(WitValue::Number(x))
            } else {
                bad(format!(
                    "input \"{name}\" ({}): element {i} is {x}, not a finite number",
                    datatype.as_str()
                ))
            }
        })
        .collect()
}

/// Length-prefixed strings: exactly `rows` of them, each UTF-8 text.
fn decode_strings(name: &str, mut data: &[u8], rows: usize) -> Result<Vec<WitValue>, Failure> {
    let mut texts = Vec::with_capacity(rows);
    while !data.is_empty() {
        let i = texts.len();
        let Some((prefix, rest)) = data.split_first_chunk::<4>() else {
            return bad(format!(
                "input \"{name}\" (BYTES): element {i} has a length prefix cut short ({} of 4 bytes)",
                data.len()
            ));
        };
        let length = u32::from_le_bytes(*prefix) as usize;
        if length > rest.len() {
            return bad(format!(
                "input \"{name}\" (BYTES): element {i} declares {length} bytes, but only {} are left",
                rest.len()
            ));
        }
        let (text, rest) = rest.split_at(length);
        let Ok(text) = std::str::from_utf8(text) else {
            return bad(format!("input \"{name}\" (BYTES): element {i} is not UTF-8 text"));
        };
        texts.push(WitValue::Text(text.to_string()));
        data = rest;
    }
    if texts.len() != rows {
        return bad(format!(
            "input \"{name}\" has a batch of {rows}, but its binary data holds {} element(s)",
            texts.len()
        ));
    }
    Ok(texts)
}

/// Appends `texts` to `buffer` as BYTES elements; returns the bytes written.
pub(super) fn encode_texts<'a>(texts: impl Iterator<Item = &'a str>, buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    for text in texts {
        // Labels are bounded at load (256 bytes), far below u32::MAX.
        buffer.extend_from_slice(&(text.len() as u32).to_le_bytes());
        buffer.extend_from_slice(text.as_bytes());
    }
    buffer.len() - start
}

/// Appends `values` to `buffer` as FP64 elements; returns the bytes written.
pub(super) fn encode_fp64(values: impl Iterator<Item = f64>, buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    for x in values {
        buffer.extend_from_slice(&x.to_le_bytes());
    }
    buffer.len() - start
}
