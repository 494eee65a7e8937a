//! Issue 17, the runtime's side with the real binary: the node's resources are read once
//! at start-up and named in the job log header; a config without requests starts as it
//! always did, even when the node's variables cannot be read as resources.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn the_header_names_the_node_resources_at_debug_for_a_config_without_requests() {
    let sb = Sandbox::new();
    let mut b = sb.start(
        r#"{"scripts": [{"name": "a", "command": "echo ran"}]}"#,
        &["--exit-when-done", "-v"],
    );
    let (status, stderr) = b.wait(T).expect("bansuri exits when done");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("[MASTER] DEBUG: Resources: "))
        .unwrap_or_else(|| panic!("no Resources line in:\n{log}"));
    assert!(
        line.contains(" CPU")
            && line.contains(", from the job's CPU set)")
            && line.contains(" GPUs"),
        "{line}"
    );
    assert_eq!(output_lines(&log, "a"), ["ran"], "{log}");
}

#[test]
fn unreadable_resources_are_a_warning_when_no_task_asks_for_any() {
    let sb = Sandbox::new();
    let mut b = sb.start_with_env(
        r#"{"scripts": [{"name": "a", "command": "echo ran"}]}"#,
        &["--exit-when-done"],
        &[("CUDA_VISIBLE_DEVICES", "0,,1")],
    );
    let (status, stderr) = b.wait(T).expect("bansuri exits when done");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let log = b.log();
    assert!(
        log.contains("[MASTER] WARNING: cannot tell what this node has: CUDA_VISIBLE_DEVICES `0,,1` is not a GPU list: item 2 is empty (no task asks for any)"),
        "{log}"
    );
    assert!(!log.contains("Resources: "), "{log}");
    assert_eq!(output_lines(&log, "a"), ["ran"], "{log}");
}
