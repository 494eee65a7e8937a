//! The web dashboard's content: the page, the Prometheus metrics, and the bit of HTTP/1.1
//! its server needs (find and parse a request head, check its `Host`, build a response).
//!
//! Served by the runtime's dashboard thread (`runtime::web`: one response per connection,
//! `Connection: close`) from a snapshot the event loop publishes, when `dashboard` is set:
//! - `/`: a page that reloads its table from `/api/status` every 2 s;
//! - `/api/status`: the state document (the same JSON as `bansuri status --json`);
//! - `/metrics`: Prometheus text format (version 0.0.4).
//!
//! Must not: touch sockets or files (pure functions of a state document and request bytes).

use std::fmt::Write as _;

use crate::control::state::{NodeInfo, ResourcesInfo, StateDoc, TaskEntry};
use crate::model::TaskState;

/// Every state a task can be in, for the one-hot `bansuri_task_state` metric: the names of
/// [`TaskState::ALL`], so that a new state cannot be left out.
pub const STATES: [&str; TaskState::ALL.len()] = {
    let mut out = [""; TaskState::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = TaskState::ALL[i].name();
        i += 1;
    }
    out
};

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The `Host` header, when there is one.
    pub host: Option<String>,
}

/// Most bytes of a request head; a longer one is refused (`431`).
pub const MAX_HEAD: usize = 8 * 1024;

/// Where the head in `buf` ends (just past its blank line), looking only at bytes from
/// `scanned` on (minus the 3 that may start a terminator): a client sending one byte at a
/// time costs one look at each byte, not a rescan of the whole buffer per byte.
pub fn head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let nl = at + i;
        if buf[..nl].ends_with(b"\n") {
            return Some(nl + 1);
        }
        if buf[..nl].ends_with(b"\n\r") {
            return Some(nl + 1);
        }
        at = nl + 1;
    }
    None
}

/// Parse the request head in `buf`: `None` while incomplete, `Some(Err)` when malformed.
pub fn parse_head(buf: &[u8]) -> Option<Result<Head, ()>> {
    let end = head_end(buf, 0)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    Some(match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Some(Err(()));
            };
            if !target.starts_with('/') {
                return Some(Err(()));
            }
            let mut hosts = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"));
            let first = hosts.next();
            // Two Host headers: which one a proxy or a check looked at is anyone's guess
            // (RFC 9112 says 400).
            if hosts.next().is_some() {
                return Some(Err(()));
            }
            let host = first
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|h| h.trim().to_owned());
            let path = target.split('?').next().unwrap_or("/");
            Ok(Head {
                method: method.to_owned(),
                path: path.to_owned(),
                host,
            })
        }
        _ => Err(()),
    })
}

/// May a request with this `Host` be answered? Only names that cannot be an attacker's
/// domain pointed at this node (DNS rebinding: a page from elsewhere that reads
/// `/api/status` through the user's browser): the bound address, `localhost`, any IP
/// address literal (`10.1.2.3`, `[::1]`: a browser sends the name it resolved, so
/// rebinding cannot produce one), and the names the user listed in `dashboard_hosts`;
/// each with or without the bound port.
pub fn host_allowed(host: Option<&str>, bound: std::net::SocketAddr, extra: &[String]) -> bool {
    let Some(host) = host else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    if host == bound.to_string() {
        return true;
    }
    let port = bound.port().to_string();
    // `name:port` or `name`; `[::1]:port` or `[::1]`.
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p == port && (!n.contains(':') || n.ends_with(']')) => n,
        Some((n, _)) if !n.contains(':') || n.ends_with(']') => return false,
        _ => host.as_str(),
    };
    name == "localhost" || is_ip_literal(name) || extra.iter().any(|e| e == name)
}

/// `name` is an IPv4 address (`10.1.2.3`) or a bracketed IPv6 one (`[::1]`), as a `Host`
/// header writes them.
fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// The answer to a request whose `Host` is not one of ours.
pub fn misdirected(head: &Head) -> Vec<u8> {
    let body = format!(
        "bansuri's dashboard does not answer to Host {:?}: only to its own address, localhost, IP addresses and the names listed in `dashboard_hosts` (this guards against DNS rebinding)\n",
        head.host.as_deref().unwrap_or("(none)")
    );
    response(
        "421 Misdirected Request",
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head.method == "HEAD",
    )
}

/// The head of a response whose body is `len` bytes.
pub fn response_head(status: &str, content_type: &str, len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A whole response (`HEAD`: the head only).
pub fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len());
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A whole response with a short plain-text body.
pub fn plain(status: &str, text: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", text.as_bytes(), false)
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A fixed answer (the page, 404, 405): the whole response.
    Fixed(&'static str, &'static str, &'static [u8]),
    /// `/api/status`: the state document.
    Status,
    /// `/metrics`.
    Metrics,
}

/// The content type of a [`Route::Status`] or [`Route::Metrics`] body.
pub const STATUS_TYPE: &str = "application/json";
/// See [`STATUS_TYPE`].
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `head` asks for.
pub fn route_of(head: &Head) -> Route {
    if head.method != "GET" && head.method != "HEAD" {
        return Route::Fixed(
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n",
        );
    }
    match head.path.as_str() {
        "/" | "/index.html" => Route::Fixed("200 OK", "text/html; charset=utf-8", PAGE.as_bytes()),
        "/api/status" => Route::Status,
        "/metrics" => Route::Metrics,
        _ => Route::Fixed(
            "404 Not Found",
            "text/plain; charset=utf-8",
            b"not found: try /, /api/status or /metrics\n",
        ),
    }
}

/// The response for a [`Route::Fixed`] answer to `head`.
pub fn fixed(head: &Head, status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    // 405 has a body also for HEAD: it is not an answer to a HEAD the resource supports.
    let head_only = head.method == "HEAD" && !status.starts_with("405");
    response(status, content_type, body, head_only)
}

/// `body` when it is at most `max` bytes, else the whole 503 response that says so.
pub fn capped<B: AsRef<[u8]>>(body: B, max: usize) -> Result<B, Vec<u8>> {
    let len = body.as_ref().len();
    if len <= max {
        return Ok(body);
    }
    let msg =
        format!("the answer would be {len} bytes, more than the {max} the dashboard serves\n");
    Err(response(
        "503 Service Unavailable",
        "text/plain; charset=utf-8",
        msg.as_bytes(),
        false,
    ))
}

/// The answer to `head`, given the present state (built only when needed).
pub fn route(head: &Head, state: impl FnOnce() -> StateDoc) -> Vec<u8> {
    let head_only = head.method == "HEAD";
    match route_of(head) {
        Route::Fixed(status, ctype, body) => fixed(head, status, ctype, body),
        Route::Status => response(
            "200 OK",
            STATUS_TYPE,
            state().to_json().as_bytes(),
            head_only,
        ),
        Route::Metrics => response(
            "200 OK",
            METRICS_TYPE,
            metrics(&state()).as_bytes(),
            head_only,
        ),
    }
}

/// A label value, escaped as the text format wants (`\\`, `\"`, `\n`).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The metrics, in Prometheus text format.
pub fn metrics(doc: &StateDoc) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "bansuri_up",
        "gauge",
        "1 while bansuri runs (the state document says so).",
        vec![(String::new(), f64::from(u8::from(doc.bansuri.running)))],
    );
    family(
        &mut out,
        "bansuri_config_invalid",
        "gauge",
        "1 when the config file on disk cannot be used and an older config is in effect.",
        vec![(
            String::new(),
            f64::from(u8::from(doc.config.invalid.is_some())),
        )],
    );
    task_metrics(&mut out, doc);
    array_metrics(&mut out, doc);
    if let Some(n) = &doc.node {
        node_metrics(&mut out, n);
    }
    if let Some(r) = &doc.resources {
        resource_metrics(&mut out, r);
    }
    out
}

/// One metric family: its HELP and TYPE lines, then one line per (labels, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// A task's figure read from its state entry (none: the task has no sample line).
type TaskFigure = fn(&TaskEntry) -> Option<f64>;

/// The per-task families with one sample per task labelled `task`: name, type, help,
/// the figure.
const TASK_FIGURES: &[(&str, &str, &str, TaskFigure)] = &[
    (
        "bansuri_task_starts_total",
        "counter",
        "Processes started for the task (the same as bansuri_task_runs_total).",
        |t| Some(t.starts as f64),
    ),
    (
        "bansuri_task_runs_total",
        "counter",
        "Attempts of the task started: every process start, retries and restarts included.",
        |t| Some(t.runs as f64),
    ),
    (
        "bansuri_task_failures_total",
        "counter",
        "Attempts of the task that ended in failure (exit code, signal, timeout, failed start).",
        |t| Some(t.failures as f64),
    ),
    (
        "bansuri_task_restarts_total",
        "counter",
        "Retries started for the task (attempts after the first of a run).",
        |t| Some(t.restarts as f64),
    ),
    (
        "bansuri_task_cpu_seconds_total",
        "counter",
        "CPU time used by the task's processes.",
        |t| Some(t.cpu_time),
    ),
    (
        "bansuri_task_cpu_percent",
        "gauge",
        "CPU use of the task's process groups at the last sample, in percent of one core.",
        |t| t.cpu_percent,
    ),
    (
        "bansuri_task_rss_bytes",
        "gauge",
        "Resident memory of the task's process groups at the last sample.",
        |t| t.rss.map(|r| r as f64),
    ),
    (
        "bansuri_task_peak_rss_bytes",
        "gauge",
        "Largest resident memory seen for the task.",
        |t| Some(t.peak_rss as f64),
    ),
    (
        "bansuri_task_last_exit_code",
        "gauge",
        "Exit code of the task's last process (absent when it was killed by a signal).",
        |t| t.last_exit.as_ref().and_then(|e| e.code).map(f64::from),
    ),
];

/// The per-task request families (issue 17), present only when some task asks.
const REQUEST_FIGURES: &[(&str, &str, &str, TaskFigure)] = &[
    (
        "bansuri_task_requested_cpus",
        "gauge",
        "CPUs each run of the task asks for (absent for a task without a request).",
        |t| t.request.map(|r| r.cpus as f64),
    ),
    (
        "bansuri_task_requested_gpus",
        "gauge",
        "GPUs each run of the task asks for (absent for a task without a request).",
        |t| t.request.map(|r| r.gpus as f64),
    ),
    (
        "bansuri_task_requested_memory_bytes",
        "gauge",
        "Memory each run of the task asks for (absent when it asks for none).",
        |t| t.request.and_then(|r| r.mem).map(|m| m as f64),
    ),
];

/// The task families: the state (one sample per state), the figures, the last signal.
/// Per array (issue 19), counts rather than one sample per element: the elements that
/// are tasks (running, failed) have their own `task` samples.
fn array_metrics(out: &mut String, doc: &StateDoc) {
    if doc.arrays.is_empty() {
        return;
    }
    let mut elements = Vec::new();
    let mut by_state = Vec::new();
    let mut runs = Vec::new();
    for a in &doc.arrays {
        let name = label(&a.name);
        let tasks: Vec<&TaskEntry> = doc
            .tasks
            .iter()
            .filter(|t| crate::array::split_element_name(&t.name).is_some_and(|(x, _)| x == a.name))
            .collect();
        let count = |states: &[&str]| {
            tasks
                .iter()
                .filter(|t| states.contains(&t.state.as_str()))
                .count() as u64
        };
        let succeeded = a.succeeded + count(&["SUCCESS"]);
        let running = count(&["STARTING", "RUNNING", "STOPPING"]);
        let failed = count(&["FAILED", "TIMEOUT", "FATAL", "SKIPPED"]) + a.failed;
        let waiting = a
            .elements
            .saturating_sub(succeeded + running + failed + a.held);
        elements.push((format!("{{array=\"{name}\"}}"), a.elements as f64));
        for (state, n) in [
            ("succeeded", succeeded),
            ("running", running),
            ("failed", failed),
            ("waiting", waiting),
            ("held", a.held),
        ] {
            by_state.push((format!("{{array=\"{name}\",state=\"{state}\"}}"), n as f64));
        }
        let live: u64 = tasks.iter().map(|t| t.runs).sum();
        runs.push((format!("{{array=\"{name}\"}}"), (a.runs + live) as f64));
    }
    family(
        out,
        "bansuri_array_elements",
        "gauge",
        "Elements of the array task.",
        elements,
    );
    family(
        out,
        "bansuri_array_elements_by_state",
        "gauge",
        "Elements of the array by where they stand: succeeded, running, failed, waiting, held (left by --retry-failed).",
        by_state,
    );
    family(
        out,
        "bansuri_array_runs_total",
        "counter",
        "Attempts started by the array's elements.",
        runs,
    );
}

fn task_metrics(out: &mut String, doc: &StateDoc) {
    let mut states = Vec::new();
    for t in &doc.tasks {
        for s in STATES {
            states.push((
                format!("{{task=\"{}\",state=\"{s}\"}}", label(&t.name)),
                f64::from(u8::from(t.state == s)),
            ));
        }
    }
    family(
        out,
        "bansuri_task_state",
        "gauge",
        "1 for the state the task is in, 0 for the others.",
        states,
    );
    let requests: &[_] = if doc.tasks.iter().any(|t| t.request.is_some()) {
        REQUEST_FIGURES
    } else {
        &[]
    };
    for (name, kind, help, figure) in TASK_FIGURES.iter().chain(requests) {
        let samples = doc
            .tasks
            .iter()
            .filter_map(|t| figure(t).map(|v| (format!("{{task=\"{}\"}}", label(&t.name)), v)))
            .collect();
        family(out, name, kind, help, samples);
    }
    family(
        out,
        "bansuri_task_last_exit_signal",
        "gauge",
        "1 when the task's last process was killed by the signal in the label.",
        doc.tasks
            .iter()
            .filter_map(|t| {
                let sig = t.last_exit.as_ref()?.signal.as_ref()?;
                Some((
                    format!("{{task=\"{}\",signal=\"{}\"}}", label(&t.name), label(sig)),
                    1.0,
                ))
            })
            .collect(),
    );
}

/// The node's load and memory.
fn node_metrics(out: &mut String, n: &NodeInfo) {
    family(
        out,
        "bansuri_node_load",
        "gauge",
        "Load average of the node.",
        vec![
            ("{period=\"1m\"}".into(), n.load[0]),
            ("{period=\"5m\"}".into(), n.load[1]),
            ("{period=\"15m\"}".into(), n.load[2]),
        ],
    );
    family(
        out,
        "bansuri_node_memory_total_bytes",
        "gauge",
        "Memory of the node.",
        vec![(String::new(), n.mem_total as f64)],
    );
    family(
        out,
        "bansuri_node_memory_available_bytes",
        "gauge",
        "Memory available on the node (MemAvailable).",
        vec![(String::new(), n.mem_available as f64)],
    );
}

/// The node's resources as bansuri packs them (issue 17): all there is and what the live
/// runs hold.
fn resource_metrics(out: &mut String, r: &ResourcesInfo) {
    let figures = [
        ("cpus", "CPUs", r.total.cpus, r.in_use.cpus),
        ("gpus", "GPUs", r.total.gpus, r.in_use.gpus),
        (
            "memory_bytes",
            "Memory",
            r.total.mem.unwrap_or(0),
            r.in_use.mem.unwrap_or(0),
        ),
    ];
    for (name, what, total, in_use) in figures {
        family(
            out,
            &format!("bansuri_node_{name}_total"),
            "gauge",
            &format!("{what} bansuri packs runs into on this node."),
            vec![(String::new(), total as f64)],
        );
        family(
            out,
            &format!("bansuri_node_{name}_in_use"),
            "gauge",
            &format!("{what} held by the live runs of tasks with a request."),
            vec![(String::new(), in_use as f64)],
        );
    }
}

/// The page: a table that refreshes itself from `/api/status`.
pub const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bansuri</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em 0; }
#summary { margin: 0 0 1em 0; color: #555; }
#warning { color: #a00; font-weight: bold; }
#resources { margin: 0 0 1em 0; color: #555; }
table { border-collapse: collapse; }
th, td { padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.RUNNING, .SUCCESS { color: #080; } .FAILED, .TIMEOUT, .FATAL { color: #b00; font-weight: bold; }
.RESTARTING, .STOPPING, .WAITING, .STARTING { color: #b60; } .STOPPED, .PENDING, .SCHEDULED, .SKIPPED { color: #555; }
.desc { color: #777; }
</style></head>
<body>
<h1>bansuri</h1>
<div id="summary">loading…</div>
<div id="warning"></div>
<div id="resources"></div>
<table><thead><tr><th>task</th><th>state</th><th>pid</th><th>uptime / next</th><th>runs</th><th>failures</th><th>last exit</th><th>CPU%</th><th>RSS</th><th>resources</th><th>description</th></tr></thead>
<tbody id="tasks"></tbody></table>
<script>
"use strict";
function span(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60; s = s % 60;
  return h ? h + "h " + m + "m" : m ? m + "m " + s + "s" : s + "s";
}
function bytes(b) {
  if (b == null) return "-";
  const u = ["B", "KB", "MB", "GB"]; let i = 0;
  while (b >= 1024 && i < 3) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}
function held(t) {
  if (t.waiting_for) return t.waiting_for;
  const g = (t.grants || []).map(g => (g.cpus ? "CPUs " + g.cpus : "no CPU") + (g.gpus.length ? ", GPUs " + g.gpus.join(",") : ""));
  if (g.length) return g.join(" / ");
  return t.request ? "asks " + t.request.cpus + " CPUs, " + t.request.gpus + " GPUs" : "";
}
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}
function render(d) {
  const now = Date.now();
  const b = d.bansuri;
  document.getElementById("summary").textContent = b.running
    ? "running on " + b.host + " (pid " + b.pid + ")" + (d.job ? ", SLURM job " + d.job.id : "") + ", up " + span(now - Date.parse(b.started_at)) + "; config " + d.config.path
    : "NOT running: exited " + (b.ended_at ? span(now - Date.parse(b.ended_at)) + " ago" : "") + (b.exit_code != null ? " with code " + b.exit_code : "");
  document.getElementById("warning").textContent = d.config.invalid
    ? "The config file on disk is NOT in effect: " + d.config.invalid.reason : "";
  const r = d.resources;
  document.getElementById("resources").textContent = r
    ? "resources: " + r.found + "; in use " + r.in_use.cpus + " of " + r.total.cpus + " CPUs, " + r.in_use.gpus + " of " + r.total.gpus + " GPUs, " + bytes(r.in_use.mem) + " of " + bytes(r.total.mem)
    : "";
  const body = document.getElementById("tasks");
  body.textContent = "";
  // An array (issue 19) is one row of counts; its elements that are tasks follow.
  const busy = ["STARTING", "RUNNING", "STOPPING"], bad = ["FAILED", "TIMEOUT", "FATAL", "SKIPPED"];
  for (const a of (d.arrays || [])) {
    const mine = d.tasks.filter(t => t.name.startsWith(a.name + "["));
    const ok = a.succeeded + mine.filter(t => t.state === "SUCCESS").length;
    const run = mine.filter(t => busy.includes(t.state)).length;
    const failed = a.failed + mine.filter(t => bad.includes(t.state)).length;
    const waiting = Math.max(0, a.elements - ok - run - failed - a.held);
    const tr = document.createElement("tr");
    tr.dataset.task = a.name;
    tr.dataset.state = "ARRAY";
    cell(tr, a.name + "[] (" + a.elements + ")");
    cell(tr, ok + " done, " + run + " running, " + failed + " failed, " + waiting + " waiting");
    cell(tr, "-", "num");
    cell(tr, "-");
    cell(tr, String(a.runs + mine.reduce((n, t) => n + t.runs, 0)), "num");
    cell(tr, String(a.failures + mine.reduce((n, t) => n + t.failures, 0)), "num");
    cell(tr, "-");
    cell(tr, "-", "num");
    cell(tr, "-", "num");
    cell(tr, "");
    cell(tr, "");
    body.appendChild(tr);
  }
  for (const t of d.tasks) {
    const tr = document.createElement("tr");
    tr.dataset.task = t.name;
    tr.dataset.state = t.state;
    cell(tr, t.name);
    cell(tr, t.state, t.state);
    cell(tr, t.pid == null ? "-" : String(t.pid), "num");
    let when = "-";
    if (t.started_at) when = "up " + span(now - Date.parse(t.started_at));
    else if (t.retry_at) when = "retry in " + span(Date.parse(t.retry_at) - now);
    else if (t.next_run_at) when = "next in " + span(Date.parse(t.next_run_at) - now);
    else if (t.ended_at) when = "ended " + span(now - Date.parse(t.ended_at)) + " ago";
    cell(tr, when);
    cell(tr, String(t.runs), "num");
    cell(tr, String(t.failures), "num");
    cell(tr, t.last_exit ? t.last_exit.text : "-");
    cell(tr, t.cpu_percent == null ? "-" : t.cpu_percent.toFixed(1), "num");
    cell(tr, bytes(t.rss), "num");
    cell(tr, held(t));
    cell(tr, t.description || "", "desc");
    body.appendChild(tr);
  }
  document.title = "bansuri: " + d.tasks.length + " tasks";
  document.body.dataset.loaded = "yes";
}
function refresh() {
  fetch("/api/status", {cache: "no-store"})
    .then(r => r.json()).then(render)
    .catch(e => { document.getElementById("summary").textContent = "cannot reach bansuri: " + e; });
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ok(Head {
                method: "GET".into(),
                path: "/metrics".into(),
                host: Some("x".into()),
            }))
        );
        assert_eq!(parse_head(b"garbage\r\n\r\n"), Some(Err(())));
        assert_eq!(parse_head(b"GET nope HTTP/1.1\r\n\r\n"), Some(Err(())));
    }

    #[test]
    fn the_end_of_a_head_is_found_by_looking_at_each_byte_once() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        // Fed one byte at a time, with `scanned` = what was seen before: found exactly
        // when the last byte comes, never before.
        for n in 1..req.len() {
            assert_eq!(head_end(&req[..n], n - 1), None, "{n}");
        }
        assert_eq!(head_end(req, req.len() - 1), Some(req.len()));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest", 0), Some(16));
        // The terminator split across reads ("\r\n" then "\r\n").
        let two = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(head_end(two, 16), Some(two.len()));
        // A scan that starts past a newline does not look before `scanned - 3`: a 1 MB
        // head fed byte by byte is linear, the reason for `scanned`.
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat(b'a').take(1 << 20));
        let t = std::time::Instant::now();
        for n in 20..big.len() {
            assert_eq!(head_end(&big[..n], n - 1), None);
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "quadratic?"
        );
    }

    #[test]
    fn only_our_own_host_names_are_answered() {
        let bound: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let extra = vec!["node042".to_owned(), "10.1.2.3".to_owned()];
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LocalHost",
            "[::1]:8080",
            "[::1]",
            "node042",
            "node042:8080",
            "10.1.2.3:8080",
        ] {
            assert!(host_allowed(Some(ok), bound, &extra), "{ok}");
        }
        for bad in [
            "evil.example.org",
            "evil.example.org:8080",
            "localhost:9090",
            "localhost.evil.org",
            "127.0.0.1:80",
            "node042:1",
            "::1",
            "",
        ] {
            assert!(!host_allowed(Some(bad), bound, &extra), "{bad}");
        }
        assert!(!host_allowed(None, bound, &extra), "no Host");
        let any: std::net::SocketAddr = "0.0.0.0:9000".parse().expect("addr");
        assert!(host_allowed(Some("0.0.0.0:9000"), any, &[]));
        assert!(!host_allowed(Some("node042:9000"), any, &[]));
        let v6: std::net::SocketAddr = "[::1]:9000".parse().expect("addr");
        assert!(host_allowed(Some("[::1]:9000"), v6, &[]));
        let head = Head {
            method: "GET".into(),
            path: "/api/status".into(),
            host: Some("evil.example.org".into()),
        };
        let r = String::from_utf8(misdirected(&head)).expect("utf8");
        assert!(r.starts_with("HTTP/1.1 421 "), "{r}");
        assert!(r.contains("dashboard_hosts"), "{r}");
    }

    #[test]
    fn an_ip_address_literal_is_answered_with_or_without_the_bound_port() {
        // Bound to 0.0.0.0 and browsed as http://<node IP>:port/: rebinding makes the
        // browser send a name, never an address, so any address is safe to answer.
        let any: std::net::SocketAddr = "0.0.0.0:9000".parse().expect("addr");
        for ok in [
            "10.1.2.3:9000",
            "10.1.2.3",
            "192.168.0.17",
            "127.0.0.2:9000",
            "[fe80::1]:9000",
            "[2001:db8::17]",
            "[::ffff:10.1.2.3]:9000",
        ] {
            assert!(host_allowed(Some(ok), any, &[]), "{ok}");
        }
        for bad in [
            "10.1.2.3:9001",
            "[fe80::1]:80",
            "10.1.2.3.evil.org",
            "10.1.2.3.evil.org:9000",
            "10.1.2",
            "010.001.002.003",
            "2130706433",
            "fe80::1",
            "[fe80::1",
            "[evil.org]",
            "[10.1.2.3]",
        ] {
            assert!(!host_allowed(Some(bad), any, &[]), "{bad}");
        }
    }

    #[test]
    fn two_host_headers_are_a_bad_request() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.org\r\n\r\n"),
            Some(Err(()))
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nhost: evil.org\r\nHOST: localhost\r\n\r\n"),
            Some(Err(()))
        );
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Host: a\r\n\r\n"),
            Some(Ok(Head { host: Some(h), .. })) if h == "localhost"
        ));
    }

    #[test]
    fn bodies_over_the_cap_are_refused() {
        assert_eq!(capped(vec![0u8; 10], 10), Ok(vec![0u8; 10]));
        let r = String::from_utf8(capped(vec![0u8; 11], 10).expect_err("too large")).expect("utf8");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.contains("11 bytes"), "{r}");
    }

    #[test]
    fn routes_and_methods() {
        let doc =
            || StateDoc::parse(include_str!("control/testdata/state.json")).expect("test doc");
        let get = |p: &str| Head {
            method: "GET".into(),
            path: p.into(),
            host: None,
        };
        let r = String::from_utf8(route(&get("/"), doc)).expect("utf8");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html"),
            "{r}"
        );
        assert!(r.contains("fetch(\"/api/status\""));
        let r = String::from_utf8(route(&get("/api/status"), doc)).expect("utf8");
        let body = r.split("\r\n\r\n").nth(1).expect("body");
        assert_eq!(StateDoc::parse(body).expect("json"), doc());
        let r = String::from_utf8(route(&get("/nope"), doc)).expect("utf8");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let post = Head {
            method: "POST".into(),
            path: "/".into(),
            host: None,
        };
        assert!(String::from_utf8(route(&post, doc))
            .expect("utf8")
            .starts_with("HTTP/1.1 405"));
        let head = Head {
            method: "HEAD".into(),
            path: "/metrics".into(),
            host: None,
        };
        let r = String::from_utf8(route(&head, doc)).expect("utf8");
        assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
    }

    #[test]
    fn every_task_state_gives_exactly_one_state_series_equal_to_one() {
        let mut doc =
            StateDoc::parse(include_str!("control/testdata/state.json")).expect("test doc");
        assert!(doc.tasks.len() >= 2);
        for s in TaskState::ALL {
            for t in &mut doc.tasks {
                t.state = s.name().to_owned();
            }
            let text = metrics(&doc);
            for t in &doc.tasks {
                let prefix = format!("bansuri_task_state{{task=\"{}\",", label(&t.name));
                let series: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
                assert_eq!(series.len(), STATES.len(), "{text}");
                let ones: Vec<&&str> = series.iter().filter(|l| l.ends_with(" 1")).collect();
                assert_eq!(
                    ones,
                    [&format!("{prefix}state=\"{}\"}} 1", s.name()).as_str()],
                    "{s:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn arrays_are_counts_not_a_sample_per_element() {
        let mut doc = crate::control::state::tests::sample_doc();
        doc.arrays.push(crate::control::state::ArrayEntry {
            name: "sweep".into(),
            elements: 100_000,
            succeeded: 99_990,
            held: 0,
            parallel: Some(2),
            skipped: None,
            runs: 99_990,
            failures: 0,
            slowest: Vec::new(),
            failed: 0,
            failed_elements: Vec::new(),
        });
        let out = metrics(&doc);
        assert!(
            out.contains("bansuri_array_elements{array=\"sweep\"} 100000\n"),
            "{out}"
        );
        assert!(
            out.contains("bansuri_array_elements_by_state{array=\"sweep\",state=\"waiting\"} 10\n"),
            "{out}"
        );
        assert!(
            out.contains("bansuri_array_runs_total{array=\"sweep\"} 99990\n"),
            "{out}"
        );
        assert!(!out.contains("sweep["), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }

    /// Issue 17: the node's resources and each task's request; none of these families
    /// when the config uses no resources.
    #[test]
    fn node_resources_and_task_requests_are_metrics() {
        use crate::control::state::{AmountsInfo, GrantInfo};
        use crate::resources::{CpuSet, Declared, Grant, Inputs, Inventory};
        let plain = StateDoc::parse(include_str!("control/testdata/state.json")).expect("test doc");
        let text = metrics(&plain);
        assert!(
            !text.contains("bansuri_node_cpus") && !text.contains("bansuri_task_requested"),
            "{text}"
        );
        let mut doc = plain.clone();
        doc.tasks[0].request = Some(AmountsInfo {
            cpus: 2,
            gpus: 1,
            mem: Some(1 << 30),
        });
        let grant = Grant {
            cpus: CpuSet::parse("0-1").unwrap(),
            gpus: vec!["a".into()],
            mem: Some(1 << 30),
        };
        doc.tasks[0].grants = vec![GrantInfo::of(&grant)];
        let inventory = Inventory::from_inputs(&Inputs {
            affinity: CpuSet::parse("0-3").unwrap(),
            mem_total: 4 << 30,
            declared: Some(Declared {
                gpus: Some(vec!["a".into(), "b".into()]),
                ..Declared::default()
            }),
            ..Inputs::default()
        })
        .unwrap();
        doc.resources = Some(ResourcesInfo::new(&inventory, [&grant].into_iter()));
        let text = metrics(&doc);
        let name = label(&doc.tasks[0].name);
        for line in [
            "bansuri_node_cpus_total 4".to_owned(),
            "bansuri_node_cpus_in_use 2".to_owned(),
            "bansuri_node_gpus_total 2".to_owned(),
            "bansuri_node_gpus_in_use 1".to_owned(),
            format!("bansuri_node_memory_bytes_total {}", 4u64 << 30),
            format!("bansuri_node_memory_bytes_in_use {}", 1u64 << 30),
            format!("bansuri_task_requested_cpus{{task=\"{name}\"}} 2"),
            format!("bansuri_task_requested_gpus{{task=\"{name}\"}} 1"),
            format!(
                "bansuri_task_requested_memory_bytes{{task=\"{name}\"}} {}",
                1u64 << 30
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let other = label(&doc.tasks[1].name);
        assert!(
            !text.contains(&format!("bansuri_task_requested_cpus{{task=\"{other}\"}}")),
            "a task without a request has no series: {text}"
        );
        // The page shows them.
        for needle in [
            "id=\"resources\"",
            "t.waiting_for",
            "t.grants",
            "r.in_use.cpus",
        ] {
            assert!(PAGE.contains(needle), "{needle}");
        }
    }
}
