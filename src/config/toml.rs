//! TOML syntax: parsed by `toml_edit` (which keeps byte spans), converted to the same
//! spanned tree as JSON so one validator serves both.
//!
//! TOML itself rejects duplicate keys, so a converted object never holds one twice; two
//! spellings of one field (`on-fail` and `on_fail`) are still caught by the validator.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value as TValue};

use super::json::SyntaxError;
use super::tree::{Key, Node, Number, Value};

/// Parses a TOML document into the spanned tree (the root is always an object).
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        SyntaxError {
            span,
            // toml_edit puts the detail on further lines; keep the header one line.
            message: format!(
                "invalid TOML: {}",
                e.message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ")
            ),
            help: None,
            note: None,
        }
    })?;
    Ok(Node {
        value: table(doc.as_table(), 0..0),
        span: 0..0,
    })
}

/// A table or an inline table (both are `TableLike`) as an object.
fn table(t: &dyn TableLike, fallback: Range<usize>) -> Value {
    let mut members = Vec::new();
    for (name, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(name) else {
            continue;
        };
        let key_span = key.span().unwrap_or_else(|| fallback.clone());
        if let Some(node) = item_node(item, key_span.clone()) {
            members.push((
                Key {
                    name: key.get().to_string(),
                    span: key_span,
                },
                node,
            ));
        }
    }
    Value::Object(members)
}

/// Spans can be missing (implicit tables such as the `a` of `[a.b]`): fall back to the
/// nearest known place, the key's.
fn item_node(item: &Item, fallback: Range<usize>) -> Option<Node> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_node(v, fallback)),
        Item::Table(t) => {
            let span = t.span().unwrap_or_else(|| fallback.clone());
            Some(Node {
                value: table(t, span.clone()),
                span,
            })
        }
        Item::ArrayOfTables(a) => {
            let span = a.span().unwrap_or_else(|| fallback.clone());
            let items = a
                .iter()
                .map(|t| {
                    let s = t.span().unwrap_or_else(|| span.clone());
                    Node {
                        value: table(t, s.clone()),
                        span: s,
                    }
                })
                .collect();
            Some(Node {
                value: Value::Array(items),
                span,
            })
        }
    }
}

fn value_node(v: &TValue, fallback: Range<usize>) -> Node {
    let span = v.span().unwrap_or(fallback);
    let value = match v {
        TValue::String(s) => Value::String(s.value().clone()),
        TValue::Integer(i) => Value::Number(Number {
            raw: i.value().to_string(),
            integer: true,
        }),
        TValue::Float(f) => Value::Number(Number {
            // `{:?}` keeps a `.0` and spells infinities and NaN so they parse back.
            raw: format!("{:?}", f.value()),
            integer: false,
        }),
        TValue::Boolean(b) => Value::Bool(*b.value()),
        TValue::Datetime(d) => Value::Datetime(d.value().to_string()),
        TValue::Array(a) => Value::Array(a.iter().map(|x| value_node(x, span.clone())).collect()),
        TValue::InlineTable(t) => table(t, span.clone()),
    };
    Node { value, span }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_spans() {
        let text = "version = \"1\"\n[[scripts]]\nname = \"a\"\ntimer = 1.5\nenv = { X = 1 }\n";
        let root = parse(text).unwrap();
        let Value::Object(m) = root.value else {
            panic!()
        };
        assert_eq!(m[0].0.name, "version");
        assert_eq!(&text[m[0].0.span.clone()], "version");
        assert_eq!(&text[m[0].1.span.clone()], "\"1\"");
        let Value::Array(scripts) = &m[1].1.value else {
            panic!()
        };
        let Value::Object(task) = &scripts[0].value else {
            panic!()
        };
        assert!(text[scripts[0].span.clone()].starts_with("[[scripts]]"));
        assert_eq!(task[1].0.name, "timer");
        assert_eq!(
            task[1].1.value,
            Value::Number(Number {
                raw: "1.5".into(),
                integer: false
            })
        );
        assert_eq!(&text[task[2].1.span.clone()], "{ X = 1 }");
    }

    #[test]
    fn errors_have_spans() {
        let e = parse("a = 1\na = 2\n").unwrap_err();
        assert!(e.message.contains("duplicate key"), "{e:?}");
        assert!(e.span.start >= 6, "{e:?}");
        let e = parse("a = [1,\n").unwrap_err();
        assert!(e.message.starts_with("invalid TOML"), "{e:?}");
        assert!(!e.message.contains('\n'), "{e:?}");
        let e = parse("[a\nb=1").unwrap_err();
        assert_eq!(
            e.message,
            "invalid TOML: invalid table header: expected `.`, `]`"
        );
        assert_eq!(e.span, 2..3);
    }
}
