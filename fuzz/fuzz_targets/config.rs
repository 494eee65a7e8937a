//! The config parsers and the validator must never panic, whatever the bytes: the first
//! byte picks the format (JSON, TOML, YAML), the rest is the file. Rendering the errors is
//! part of the target (it slices the source around the error's span).
#![no_main]

use std::path::Path;

use bansuri::config::{parse_str, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (format, name) = match first % 3 {
        0 => (Format::Json, "/nonexistent/fuzz.json"),
        1 => (Format::Toml, "/nonexistent/fuzz.toml"),
        _ => (Format::Yaml, "/nonexistent/fuzz.yaml"),
    };
    if let Err(e) = parse_str(text, Path::new(name), format) {
        let rendered = e.to_string();
        assert!(!rendered.is_empty());
    }
});
