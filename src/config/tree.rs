//! The spanned tree both parsers produce and the validator walks.
//!
//! Every node and every key keeps the byte range it came from, so any error found while
//! validating can point at the exact text. Objects are ordered lists, not maps: a key given
//! twice stays visible and is reported instead of silently overwritten.

use std::ops::Range;

/// A value with the byte range of its text in the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub span: Range<usize>,
}

/// An object key with the byte range of its text (quotes included).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub span: Range<usize>,
}

/// A number as written: its text is kept so integers and floats stay distinct and a huge
/// literal is reported as "too large" rather than silently rounded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Number {
    pub raw: String,
    /// No fraction and no exponent.
    pub integer: bool,
}

impl Number {
    /// The value as an `i64`, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        if self.integer {
            self.raw.parse().ok()
        } else {
            None
        }
    }

    /// The value as an `f64` (may be infinite for huge literals, NaN for TOML's `nan`).
    pub fn as_f64(&self) -> f64 {
        self.raw.parse().unwrap_or(f64::NAN)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(Key, Node)>),
    /// A TOML date/time, as written (no field takes one).
    Datetime(String),
}

impl Value {
    /// "a string", "an object", ... for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(n) if n.integer => "an integer",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
            Value::Datetime(_) => "a date/time",
        }
    }
}
