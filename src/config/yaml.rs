//! YAML syntax: parsed by `yaml-rust2`'s event parser (which marks where each event
//! starts), converted to the same spanned tree as JSON and TOML.
//!
//! Plain scalars are typed the way a Taskmaster (PyYAML) user expects: `true`/`yes`/`on`
//! and `false`/`no`/`off` are booleans, `~`/`null`/empty are null, numbers are numbers
//! (their text is kept, so `umask: 022` still reads as octal 022), everything else is a
//! string; quoted scalars are always strings. Anchors and aliases are refused (a config
//! has no use for them, and they would make spans ambiguous).

use std::ops::Range;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::json::SyntaxError;
use super::tree::{Key, Node, Number, Value};

/// Parses a YAML document into the spanned tree.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let offsets = ByteOffsets::new(text);
    let mut b = Builder {
        offsets: &offsets,
        stack: Vec::new(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, false) {
        let at = offsets.byte(e.marker().index());
        return Err(SyntaxError {
            span: at..(at + 1).min(text.len().max(at)),
            message: format!("invalid YAML: {}", e.info()),
            help: None,
            note: None,
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Null,
        span: 0..0,
    }))
}

/// Marker indexes count characters; spans are bytes.
struct ByteOffsets {
    /// Byte offset of each character, when the text is not ASCII.
    table: Option<Vec<usize>>,
    len: usize,
}

impl ByteOffsets {
    fn new(text: &str) -> ByteOffsets {
        let table = (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b).collect());
        ByteOffsets {
            table,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Key, Node)>, Option<Key>),
}

struct Builder<'a> {
    offsets: &'a ByteOffsets,
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder<'_> {
    fn fail(&mut self, span: Range<usize>, message: &str) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                span,
                message: message.to_string(),
                help: None,
                note: None,
            });
        }
    }

    /// A finished value goes into its parent (or becomes the root).
    fn put(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, members, pending)) => {
                match pending.take() {
                    Some(key) => members.push((key, node)),
                    None => {
                        // A key: only scalars can be keys here.
                        let name = match &node.value {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.raw.clone(),
                            Value::Bool(b) => b.to_string(),
                            Value::Null => String::new(),
                            _ => {
                                let span = node.span.clone();
                                self.fail(span, "invalid YAML: a key must be a plain value, not a list or a map");
                                return;
                            }
                        };
                        if let Some(Frame::Map(_, _, pending)) = self.stack.last_mut() {
                            *pending = Some(Key {
                                name,
                                span: node.span,
                            });
                        }
                    }
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = self.offsets.byte(mark.index());
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if anchor != 0 {
                    self.fail(
                        at..at + 1,
                        "YAML anchors are not supported in a bansuri config",
                    );
                    return;
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                let width = text.len() + if quoted { 2 } else { 0 };
                let value = if quoted {
                    Value::String(text)
                } else {
                    plain(text)
                };
                self.put(Node {
                    value,
                    span: at..at + width.max(1),
                });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                self.fail(
                    at..at + 1,
                    "YAML anchors are not supported in a bansuri config",
                );
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(at, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(at, Vec::new(), None)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(start, items)) = self.stack.pop() {
                    self.put(Node {
                        value: Value::Array(items),
                        span: start..at.max(start + 1),
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(start, members, _)) = self.stack.pop() {
                    self.put(Node {
                        value: Value::Object(members),
                        span: start..at.max(start + 1),
                    });
                }
            }
            Event::Alias(_) => {
                self.fail(
                    at..at + 1,
                    "YAML aliases are not supported in a bansuri config",
                );
            }
            _ => {}
        }
    }
}

/// Type a plain (unquoted) scalar.
fn plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return Value::Bool(true),
        "false" | "no" | "off" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::Number(Number {
            raw: text,
            integer: true,
        });
    }
    if text.parse::<f64>().is_ok_and(f64::is_finite) && text.bytes().any(|b| b.is_ascii_digit()) {
        return Value::Number(Number {
            raw: text,
            integer: false,
        });
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_typed_like_pyyaml() {
        let n = parse("a: yes\nb: 022\nc: 1.5\nd: INT\ne: '022'\nf: ~\ng: [0, 2]\n").unwrap();
        let Value::Object(m) = n.value else { panic!() };
        let get = |k: &str| {
            m.iter()
                .find(|(key, _)| key.name == k)
                .unwrap()
                .1
                .value
                .clone()
        };
        assert_eq!(get("a"), Value::Bool(true));
        assert!(
            matches!(get("b"), Value::Number(Number { ref raw, integer: true }) if raw == "022")
        );
        assert!(matches!(
            get("c"),
            Value::Number(Number { integer: false, .. })
        ));
        assert_eq!(get("d"), Value::String("INT".into()));
        assert_eq!(get("e"), Value::String("022".into()));
        assert_eq!(get("f"), Value::Null);
        assert!(matches!(get("g"), Value::Array(ref v) if v.len() == 2));
    }

    #[test]
    fn spans_point_at_the_text() {
        let text = "programs:\n  é:\n    cmd: \"x\"\n";
        let n = parse(text).unwrap();
        let Value::Object(m) = &n.value else { panic!() };
        let Value::Object(p) = &m[0].1.value else {
            panic!()
        };
        assert_eq!(&text[p[0].0.span.clone()], "é");
        let Value::Object(f) = &p[0].1.value else {
            panic!()
        };
        assert_eq!(&text[f[0].1.span.clone()], "\"x\"");
    }

    #[test]
    fn errors_and_nasty_input_do_not_panic() {
        for bad in [
            "a: [1, 2",
            "a: b: c",
            "- &x 1\n- *x",
            "\t- x",
            "{",
            "a:\n  - b\n c: d",
            "\u{0}",
        ] {
            let _ = parse(bad);
        }
        let e = parse("a: [1, 2").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    }
}
