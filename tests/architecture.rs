//! The module graph has no cycle.
//!
//! Reads every `src/**/*.rs` file, maps it to its top-level module (`src/core/tests.rs` and
//! `src/core/mod.rs` are both `core`; `src/lib.rs` and `src/main.rs` are the crate root and
//! are left out), collects the top-level modules it names through `crate::X` (in `use`
//! lines, `use crate::{X, Y::Z}` groups and paths in code), and fails naming every cycle
//! of that graph. `super::` stays inside the module it is written in (child modules of one
//! top-level module count as that module), so it adds no edge. Comments are skipped: a doc
//! link is not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a source file belongs to, or `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    if rel.components().count() == 1 {
        let stem = first.strip_suffix(".rs")?;
        if stem == "lib" || stem == "main" {
            return None;
        }
        return Some(stem.to_owned());
    }
    Some(first)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Unit-test files (`tests.rs`, `tests_env.rs`, anything under a `tests/` folder): a test
/// may drive a neighbour module to check its own, which is no dependency of the library.
fn is_test_file(src: &Path, file: &Path) -> bool {
    file.strip_prefix(src)
        .unwrap_or(file)
        .components()
        .any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|s| s.starts_with("tests"))
        })
}

/// The top-level modules named in `text` through `crate::`, outside comments and outside
/// inline `#[cfg(test)] mod ... { }` blocks.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if code == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod ") && l.trim_end().ends_with('{'))
        {
            // Skip the test module: count braces until its own closes.
            let mut depth = 0i32;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                if depth <= 0 {
                    break;
                }
            }
            continue;
        }
        let code = match code.find("//") {
            // A `//` inside a string literal would cut the line short: only drop a trailing
            // comment when no quote precedes it.
            Some(i) if !code[..i].contains('"') => &code[..i],
            _ => code,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = &rest[..i];
            let after = &rest[i + "crate::".len()..];
            rest = after;
            // `$crate::` in a macro and `bansuri_crate::` are not this crate's paths.
            if before.ends_with('$')
                || before
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                // `crate::{a, b::c, d::{e, f}}`: the first segment of every top-level item.
                let mut depth = 0;
                let mut at_item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_item_start = true,
                        c if at_item_start && !c.is_whitespace() => {
                            at_item_start = false;
                            let id = ident_at(&group[j..]);
                            if !id.is_empty() && id != "self" {
                                out.insert(id.to_owned());
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let id = ident_at(after);
                if !id.is_empty() {
                    out.insert(id.to_owned());
                }
            }
        }
    }
    out
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        if is_test_file(src, file) {
            continue;
        }
        let text =
            fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let edges = graph.entry(from.clone()).or_default();
        for to in crate_refs(&text) {
            // Items of the crate root (`crate::VERSION`) are not modules.
            if to != from && modules.contains(&to) {
                edges.insert(to);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().expect("on the stack");
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// The edges inside one component, `a -> b` each, to show where to cut.
fn edges_within(graph: &Graph, component: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = component.iter().collect();
    let mut out = Vec::new();
    for from in component {
        for to in graph.get(from).into_iter().flatten() {
            if set.contains(to) {
                out.push(format!("{from} -> {to}"));
            }
        }
    }
    out
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    assert!(
        graph.len() > 10,
        "found only {} modules under {}: is the scan broken?",
        graph.len(),
        src.display()
    );
    let found = cycles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            format!(
                "cycle between {{{}}}: {}",
                c.join(", "),
                edges_within(&graph, c).join(", ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "the modules import each other in a cycle:\n{}",
        report.join("\n")
    );
}

#[test]
fn leaves_import_nothing_and_the_core_no_io_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    // The shared vocabulary: anything may import these, so they import nothing of ours.
    for leaf in ["text", "model", "diagnostic", "console", "clock", "level"] {
        let Some(edges) = graph.get(leaf) else {
            panic!("no module `{leaf}` under {}", src.display());
        };
        assert!(
            edges.is_empty(),
            "`{leaf}` is a leaf (ARCHITECTURE.md) but imports {edges:?}"
        );
    }
    // The core is pure: its inputs, its types and its words, nothing that touches the OS.
    // `resources` is pure too (issue 17: it imports only `clock` and `text`), and so is
    // `array` (issue 19: array forms and element names, no file read).
    let pure: BTreeSet<&str> = [
        "array",
        "clock",
        "level",
        "model",
        "resources",
        "schedule",
        "spec",
        "text",
    ]
    .into();
    let core = graph.get("core").expect("a module `core`");
    let io: Vec<&String> = core.iter().filter(|m| !pure.contains(m.as_str())).collect();
    assert!(io.is_empty(), "the core imports {io:?}");
}

#[test]
fn the_scanner_reads_use_lines_groups_and_paths() {
    let text = r#"
use crate::core::{Action, Input};
use crate::{clock::Now, spec::{Spec, TaskSpec}, self};
use super::helper;
// use crate::commented;
/// See [`crate::documented`].
fn f() { let x = crate::text::fmt_dur(d); $crate::macro_path; } // crate::trailing
#[cfg(test)]
mod tests {
    use crate::test_only;
    fn g() { if x { crate::also_test_only::f() } }
}
fn h() -> crate::after_tests::T {}
"#;
    let refs: Vec<String> = crate_refs(text).into_iter().collect();
    assert_eq!(
        refs,
        ["after_tests", "clock", "core", "spec", "text"],
        "the modules named"
    );
}

#[test]
fn the_cycle_finder_names_every_module_of_a_cycle() {
    let mut graph = Graph::new();
    let mut edge = |a: &str, b: &str| {
        graph.entry(a.to_owned()).or_default().insert(b.to_owned());
        graph.entry(b.to_owned()).or_default();
    };
    edge("cli", "embed");
    edge("embed", "runtime");
    edge("runtime", "cli");
    edge("runtime", "core");
    edge("spec", "schedule");
    edge("schedule", "spec");
    edge("core", "spec");
    let mut found = cycles(&graph);
    found.sort();
    assert_eq!(
        found,
        vec![vec!["cli", "embed", "runtime"], vec!["schedule", "spec"]]
    );
    graph.get_mut("schedule").expect("schedule").clear();
    graph.get_mut("runtime").expect("runtime").remove("cli");
    assert!(
        cycles(&graph).is_empty(),
        "no cycle once the back edges are cut"
    );
}

// ---------------------------------------------------------------------------------------
// No function over 100 lines (issue 16): long functions hide their steps; a data table is
// the one exception (a list of fields reads best as one list).

/// The longest function allowed, in lines from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

/// Functions allowed to be longer, as (file under src/, function name), each with why.
const LONG_FN_ALLOWED: &[(&str, &str)] = &[
    // Data tables: the schema's field lists, one entry per config field (checked against
    // the validator's field tables by config::schema's tests).
    ("config/schema.rs", "task_entries"),
    ("config/schema.rs", "global_entries"),
];

/// `text` with comments, string literals and char literals turned into spaces (newlines
/// kept, so line numbers hold): braces and the word `fn` inside them count for nothing.
fn code_only(text: &str) -> Vec<char> {
    let s: Vec<char> = text.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let end = if c == '/' && at(i + 1) == '/' {
            (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len())
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let (mut j, mut depth) = (i, 0);
            while j < s.len() {
                if at(j) == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 2;
                } else if at(j) == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if c == 'r'
            && (i == 0 || !ident(s[i - 1]) || (s[i - 1] == 'b' && (i < 2 || !ident(s[i - 2]))))
            && matches!(at(i + 1), '"' | '#')
        {
            // A raw string: r"..", r#".."#, br"..".
            let hashes = (i + 1..s.len()).take_while(|&j| s[j] == '#').count();
            if at(i + 1 + hashes) != '"' {
                i += 1;
                continue;
            }
            let mut j = i + 2 + hashes;
            while j < s.len() && !(s[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#')) {
                j += 1;
            }
            j + 1 + hashes
        } else if c == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if c == '\'' && at(i + 1) == '\\' {
            // An escaped char literal: '\n', '\'', '\u{7f}'.
            (i + 3..s.len())
                .find(|&j| s[j] == '\'')
                .map_or(s.len(), |j| j + 1)
        } else if c == '\'' && at(i + 2) == '\'' {
            i + 3
        } else {
            // Code, or a lifetime ('a).
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    out
}

/// The index of the brace closing the one opened at `open` (or the end).
fn closing_brace(code: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (j, &c) in code.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    code.len()
}

fn word_at(code: &[char], i: usize, word: &str) -> bool {
    let ident = |c: &char| c.is_alphanumeric() || *c == '_';
    word.chars()
        .enumerate()
        .all(|(k, w)| code.get(i + k) == Some(&w))
        && (i == 0 || !ident(&code[i - 1]))
        && !code.get(i + word.len()).is_some_and(ident)
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn ident_from(code: &[char], i: usize) -> String {
    code[i.min(code.len())..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect()
}

/// Blank every inline `#[cfg(test)] mod NAME { .. }` block of `code`.
fn drop_test_modules(code: &mut [char]) {
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= code.len() {
        if code[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let mut j = skip_space(code, i + marker.len());
        if word_at(code, j, "pub") {
            j = skip_space(code, j + 3);
        }
        if word_at(code, j, "mod") {
            let name_at = skip_space(code, j + 3);
            let after = skip_space(code, name_at + ident_from(code, name_at).len());
            if code.get(after) == Some(&'{') {
                let close = closing_brace(code, after).min(code.len() - 1);
                for c in &mut code[i..=close] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = close;
            }
        }
        i += 1;
    }
}

/// Every function with a body in `text`, nested ones included: (line of `fn`, name,
/// lines from the `fn` line to the closing brace). Test modules are left out.
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let mut code = code_only(text);
    drop_test_modules(&mut code);
    let line_of = |i: usize| 1 + code[..i].iter().filter(|&&c| c == '\n').count();
    let mut found = Vec::new();
    for i in 0..code.len() {
        if !word_at(&code, i, "fn") {
            continue;
        }
        let name_at = skip_space(&code, i + 2);
        let name = ident_from(&code, name_at);
        if name.is_empty() {
            continue; // a `fn(..)` pointer type
        }
        // The body opens at the first `{` outside parentheses and brackets; a `;` first
        // means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        for (j, &c) in code.iter().enumerate().skip(name_at) {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '{' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                ';' if depth == 0 => break,
                _ => {}
            }
        }
        if let Some(open) = open {
            let close = closing_brace(&code, open);
            let first = line_of(i);
            found.push((first, name, line_of(close.min(code.len())) - first + 1));
        }
    }
    found
}

#[test]
fn no_function_over_100_lines_outside_tests_and_data_tables() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut long = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    let mut counted = 0;
    for file in files.iter().filter(|f| !is_test_file(&src, f)) {
        let text =
            fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy();
        for (line, name, len) in functions(&text) {
            counted += 1;
            if len <= MAX_FN_LINES {
                continue;
            }
            if LONG_FN_ALLOWED.contains(&(&*rel, name.as_str())) {
                allowed_seen.insert((rel.to_string(), name));
            } else {
                long.push(format!("src/{rel}:{line}: fn {name} is {len} lines"));
            }
        }
    }
    assert!(
        counted > 500,
        "found only {counted} functions: is the scan broken?"
    );
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
    let stale: Vec<String> = LONG_FN_ALLOWED
        .iter()
        .filter(|(f, n)| !allowed_seen.contains(&(f.to_string(), n.to_string())))
        .map(|(f, n)| format!("src/{f}: fn {n}"))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed to be long but no longer over {MAX_FN_LINES} lines: remove from \
         LONG_FN_ALLOWED:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_function_scanner_measures_bodies_and_skips_tests_strings_and_comments() {
    let long_body = "    let x = 1;\n".repeat(5);
    let text = format!(
        r##"
/// fn in_doc() {{ }}
pub(crate) fn outer(a: &str) -> Result<(), String> {{
    let s = "}} fn in_string() {{";
    let r = r#"}}"#;
    let c = '}}';
    let q = '\'';
    let l: &'static str = "x";
    // }} fn in_comment() {{
    /* }} /* nested }} */ fn in_block() {{ */
    let f = |x: u32| {{ x + 1 }};
    fn inner() {{
{long_body}    }}
    Ok(())
}}
trait T {{
    fn declared(&self) -> fn(u8) -> u8;
}}
fn short() {{}}
#[cfg(test)]
mod tests {{
    fn in_test() {{
{long_body}    }}
}}
fn after_tests<'a>(x: &'a [u8; 2]) where u8: Copy {{
    x;
}}
"##
    );
    let found = functions(&text);
    let got: Vec<(usize, &str, usize)> = found
        .iter()
        .map(|(line, name, len)| (*line, name.as_str(), *len))
        .collect();
    assert_eq!(
        got,
        [
            (3, "outer", 18),
            (12, "inner", 7),
            (24, "short", 1),
            (35, "after_tests", 3)
        ],
        "in:\n{text}"
    );
    // Just over the limit: found, and measured from the `fn` line to the closing brace.
    let over = format!(
        "fn over() {{\n{}}}\n",
        "    step();\n".repeat(MAX_FN_LINES - 1)
    );
    assert_eq!(functions(&over), [(1, "over".to_owned(), MAX_FN_LINES + 1)]);
}
