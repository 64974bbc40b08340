//! Codecs: how keys and values become bytes and back.
//!
//! Faust's defaults are kept: keys use [`Raw`] (bytes or UTF-8 text, untouched) and values use
//! [`Json`]. [`Postcard`] is a compact binary codec for Rust-to-Rust topics. Models are plain serde
//! types (`#[derive(Serialize, Deserialize)]`). A topic can take any [`Codec`] (Avro, a schema
//! registry, ...); [`SerdeCodec`] is the one a [`CodecName`] selects.
//!
//! Decoding reads from the record's `Bytes` slice: [`Raw`] into `Bytes` is a reference count,
//! not a copy, and `SerdeCodec` takes that path too for `Bytes` keys and values.
//!
//! Every failure is a [`CodecError`] that names the codec, the direction, the part of the message
//! (key, value, ...), the Rust type, and, when the bytes came from a topic, the coordinate
//! (topic/partition/offset) of the record.

use std::any::Any;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::event::Coordinate;

/// Encoding or decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rust value to bytes.
    Encode,
    /// Bytes to Rust value.
    Decode,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Encode => "encode",
            Direction::Decode => "decode",
        })
    }
}

/// Which part of a message was being (de)serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The record key.
    Key,
    /// The record value.
    Value,
    /// Something else (a reply envelope, a header, ...), or not said.
    Other,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Key => "key",
            Part::Value => "value",
            Part::Other => "data",
        })
    }
}

/// The underlying error of a [`CodecError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A codec failure: what failed, with which codec, for which type, and where.
#[derive(Debug, thiserror::Error)]
#[error("failed to {direction} {part} as {codec} ({type_name}){}: {source}", at_suffix(.at))]
pub struct CodecError {
    /// The codec name (`"json"`, `"raw"`, `"postcard"`).
    pub codec: &'static str,
    /// Encoding or decoding.
    pub direction: Direction,
    /// Key, value or other.
    pub part: Part,
    /// The Rust type being (de)serialized.
    pub type_name: &'static str,
    /// Where the bytes came from, when they came from a topic.
    pub at: Option<Coordinate>,
    /// The underlying error.
    #[source]
    pub source: BoxError,
}

fn at_suffix(at: &Option<Coordinate>) -> String {
    match at {
        Some(c) => format!(" at {c}"),
        None => String::new(),
    }
}

impl CodecError {
    /// A new error for type `T`, with [`Part::Other`] and no coordinate.
    pub fn new<T: ?Sized>(
        codec: &'static str,
        direction: Direction,
        source: impl Into<BoxError>,
    ) -> Self {
        CodecError {
            codec,
            direction,
            part: Part::Other,
            type_name: std::any::type_name::<T>(),
            at: None,
            source: source.into(),
        }
    }

    /// Says which part of the message failed.
    pub fn for_part(mut self, part: Part) -> Self {
        self.part = part;
        self
    }

    /// Attaches the coordinate of the record that failed.
    pub fn at(mut self, at: Coordinate) -> Self {
        self.at = Some(at);
        self
    }
}

/// A codec for values of type `T`.
pub trait Codec<T>: Send + Sync + 'static {
    /// The codec's name, as in Faust's `key_serializer`/`value_serializer` settings.
    fn name(&self) -> &'static str;
    /// Encodes a value.
    fn encode(&self, value: &T) -> Result<Bytes, CodecError>;
    /// Decodes a value from a record's bytes (a slice of the fetch response: keep a
    /// reference to it rather than copying, where `T` allows).
    fn decode(&self, bytes: &Bytes) -> Result<T, CodecError>;
}

/// JSON (Faust's default value codec), through serde_json.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new::<T>("json", Direction::Encode, e))
    }
    fn decode(&self, bytes: &Bytes) -> Result<T, CodecError> {
        serde_json::from_slice(bytes)
            .map_err(|e| CodecError::new::<T>("json", Direction::Decode, e))
    }
}

/// Postcard: compact binary serde (not readable by Faust; for Rust-to-Rust topics).
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn name(&self) -> &'static str {
        "postcard"
    }
    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        postcard::to_stdvec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new::<T>("postcard", Direction::Encode, e))
    }
    fn decode(&self, bytes: &Bytes) -> Result<T, CodecError> {
        postcard::from_bytes(bytes)
            .map_err(|e| CodecError::new::<T>("postcard", Direction::Decode, e))
    }
}

/// Raw bytes (Faust's default key codec): `Bytes`, `Vec<u8>`, or UTF-8 `String`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Bytes> for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn encode(&self, value: &Bytes) -> Result<Bytes, CodecError> {
        Ok(value.clone())
    }
    fn decode(&self, bytes: &Bytes) -> Result<Bytes, CodecError> {
        Ok(bytes.clone())
    }
}

impl Codec<Vec<u8>> for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn encode(&self, value: &Vec<u8>) -> Result<Bytes, CodecError> {
        Ok(Bytes::copy_from_slice(value))
    }
    fn decode(&self, bytes: &Bytes) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

impl Codec<String> for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn encode(&self, value: &String) -> Result<Bytes, CodecError> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }
    fn decode(&self, bytes: &Bytes) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| CodecError::new::<String>("raw", Direction::Decode, e))
    }
}

/// A codec chosen by name, as in Faust's `key_serializer="raw"` / `value_serializer="json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// [`Raw`].
    Raw,
    /// [`Json`].
    Json,
    /// [`Postcard`].
    Postcard,
}

impl CodecName {
    /// Faust's default key codec: `raw`.
    pub const DEFAULT_KEY: CodecName = CodecName::Raw;
    /// Faust's default value codec: `json`.
    pub const DEFAULT_VALUE: CodecName = CodecName::Json;

    /// The name as written in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecName::Raw => "raw",
            CodecName::Json => "json",
            CodecName::Postcard => "postcard",
        }
    }
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown codec name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?} (known: raw, json, postcard)")]
pub struct UnknownCodec(pub String);

impl FromStr for CodecName {
    type Err = UnknownCodec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(CodecName::Raw),
            "json" => Ok(CodecName::Json),
            "postcard" => Ok(CodecName::Postcard),
            other => Err(UnknownCodec(other.to_string())),
        }
    }
}

/// Encodes a serde value with the codec named `name`. `raw` accepts only values that serialize
/// as a string or as bytes (`String`, `&str`, `serde_bytes`-style byte buffers); anything else is
/// a typed error.
pub fn encode<T: Serialize>(name: CodecName, value: &T) -> Result<Bytes, CodecError> {
    match name {
        CodecName::Json => serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new::<T>("json", Direction::Encode, e)),
        CodecName::Postcard => postcard::to_stdvec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::new::<T>("postcard", Direction::Encode, e)),
        CodecName::Raw => match serde_json::to_value(value) {
            Ok(serde_json::Value::String(s)) => Ok(Bytes::from(s)),
            Ok(serde_json::Value::Array(items))
                if items.iter().all(|v| v.as_u64().is_some_and(|n| n <= 255)) =>
            {
                Ok(items
                    .iter()
                    .map(|v| v.as_u64().unwrap_or_default() as u8)
                    .collect::<Vec<u8>>()
                    .into())
            }
            Ok(_) => Err(CodecError::new::<T>(
                "raw",
                Direction::Encode,
                "raw encodes only strings and bytes",
            )),
            Err(e) => Err(CodecError::new::<T>("raw", Direction::Encode, e)),
        },
    }
}

/// Decodes a serde value with the codec named `name`. `raw` decodes into types that deserialize
/// from a string (the bytes must be UTF-8); use [`Raw`] directly for byte buffers.
pub fn decode<T: DeserializeOwned>(name: CodecName, bytes: &[u8]) -> Result<T, CodecError> {
    match name {
        CodecName::Json => serde_json::from_slice(bytes)
            .map_err(|e| CodecError::new::<T>("json", Direction::Decode, e)),
        CodecName::Postcard => postcard::from_bytes(bytes)
            .map_err(|e| CodecError::new::<T>("postcard", Direction::Decode, e)),
        CodecName::Raw => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| CodecError::new::<T>("raw", Direction::Decode, e))?;
            T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text))
                .map_err(|e| CodecError::new::<T>("raw", Direction::Decode, e))
        }
    }
}

/// `value` as a `U`, when `T` is `U` (no allocation).
fn same_type<T: 'static, U: 'static + Clone>(value: &T) -> Option<U> {
    (value as &dyn Any).downcast_ref::<U>().cloned()
}

/// `value` as a `T`, when `T` is `U` (no allocation).
fn into_type<U: 'static, T: 'static>(value: U) -> Option<T> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
}

/// The codec a [`CodecName`] selects, for any serde type: [`encode`] and [`decode`], with the
/// zero-copy path for `Bytes` and a direct one for `String` under `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerdeCodec(pub CodecName);

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Codec<T> for SerdeCodec {
    fn name(&self) -> &'static str {
        self.0.as_str()
    }

    fn encode(&self, value: &T) -> Result<Bytes, CodecError> {
        if self.0 == CodecName::Raw {
            if let Some(b) = same_type::<T, Bytes>(value) {
                return Ok(b);
            }
            if let Some(s) = (value as &dyn Any).downcast_ref::<String>() {
                return Ok(Bytes::copy_from_slice(s.as_bytes()));
            }
        }
        encode(self.0, value)
    }

    fn decode(&self, bytes: &Bytes) -> Result<T, CodecError> {
        if self.0 == CodecName::Raw {
            if let Some(v) = into_type::<Bytes, T>(bytes.clone()) {
                return Ok(v);
            }
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<String>() {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|e| CodecError::new::<T>("raw", Direction::Decode, e))?;
                if let Some(v) = into_type::<String, T>(text) {
                    return Ok(v);
                }
            }
        }
        decode(self.0, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_not_copied() {
        let buf = Bytes::from_static(b"payload");
        let codec = SerdeCodec(CodecName::Raw);
        let got: Bytes = codec.decode(&buf).unwrap();
        assert_eq!(got.as_ptr(), buf.as_ptr());
        let back = Codec::<Bytes>::encode(&codec, &got).unwrap();
        assert_eq!(back.as_ptr(), buf.as_ptr());
    }

    #[test]
    fn raw_text_and_json_models() {
        let codec = SerdeCodec(CodecName::Raw);
        let s: String = codec.decode(&Bytes::from_static(b"hello")).unwrap();
        assert_eq!(s, "hello");
        assert!(Codec::<String>::decode(&codec, &Bytes::from_static(b"\xff")).is_err());
        let json = SerdeCodec(CodecName::Json);
        let v: Vec<i32> = json.decode(&Bytes::from_static(b"[1,2]")).unwrap();
        assert_eq!(v, vec![1, 2]);
    }
}
