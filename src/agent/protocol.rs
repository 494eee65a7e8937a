//! The leader <-> agent protocol (issue 18): framed, versioned, carried by the one SLURM
//! step that runs `bansuri agent` on every other node of the allocation.
//!
//! Transport: the step's own standard input and output, i.e. SLURM's I/O forwarding, so
//! bansuri opens no port. srun broadcasts its standard input to every task of the step
//! (one agent per node), so each leader frame names its node (`to`, or `*` for all); srun
//! is run with `--label`, so every line an agent writes reaches the leader prefixed with
//! the agent's task rank (`2: ...`), which tells the agents' frames apart even when their
//! lines interleave.
//!
//! Framing: one frame per line, `bansuri-agent/1 ` followed by the frame as one line of
//! JSON (`{"t":"start",...}`). The version word comes first so a leader and an agent of
//! different releases refuse each other with a clear message at the handshake instead of
//! misreading frames. A line that is not a frame (an agent's stray diagnostic) is
//! reported, not fatal. Task output travels as one frame per line of output: text when it
//! is UTF-8, else base64 (`b`), so the job log gets the bytes the task wrote.
//!
//! Owns: the frame types, their encoding and decoding, the srun label, the version rule.
//! Must not: do I/O, know the runtime's types beyond plain data.

use serde::{Deserialize, Serialize};

/// The protocol's name and version, the first word of every frame.
pub const MAGIC: &str = "bansuri-agent/1";

/// Frames the leader sends (broadcast to every agent; `to` picks the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToAgent {
    /// Start one attempt of a run on node `to`.
    Start {
        /// The node (its host name as SLURM names it).
        to: String,
        /// The leader's id of this attempt.
        run: u64,
        /// The task's name (for the agent's own diagnostics).
        task: String,
        /// Program and arguments.
        argv: Vec<String>,
        /// The variables set over the agent's own environment (the job's, as srun
        /// started the agent on that node).
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: String,
        /// CPUs to bind to (a Linux cpu list), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpus: Option<String>,
        /// `umask` for the process, if set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        umask: Option<u32>,
        /// `nice` for the process, if set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nice: Option<i32>,
    },
    /// Send a signal to the process group of `run`.
    Signal {
        /// The node.
        to: String,
        /// The attempt.
        run: u64,
        /// The signal number.
        signal: i32,
    },
    /// A heartbeat: answer with `Pong { seq }`.
    Ping {
        /// Echoed back.
        seq: u64,
    },
    /// End: SIGKILL whatever is left and exit.
    Shutdown,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// Frames an agent sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromAgent {
    /// The handshake: the agent is up and what its node has.
    Ready {
        /// The node's host name.
        node: String,
        /// The agent's pid on that node.
        pid: u32,
        /// The CPUs the agent may use (a Linux cpu list).
        cpus: String,
        /// Memory of the node, bytes.
        mem: u64,
        /// GPU IDs the agent found (`SLURM_JOB_GPUS`, `CUDA_VISIBLE_DEVICES`...), as its
        /// processes address them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gpus: Vec<String>,
    },
    /// The attempt runs: its process (group leader) id.
    Started {
        /// The attempt.
        run: u64,
        /// Its pid on the agent's node.
        pid: u32,
    },
    /// The attempt could not start.
    StartFailed {
        /// The attempt.
        run: u64,
        /// Why, in words.
        error: String,
    },
    /// One line of the attempt's output, without its newline.
    Output {
        /// The attempt.
        run: u64,
        /// Which stream.
        stream: Stream,
        /// The line when it is UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s: Option<String>,
        /// The line as base64 when it is not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
    /// The attempt's main process ended while other processes of its group live on: the
    /// run is not over (the leader stops the leftovers, as for a local run).
    LeaderExited {
        /// The attempt.
        run: u64,
        /// Exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// Signal number, when a signal killed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The attempt is over: its main process was reaped and its process group is empty.
    /// CPU time and peak RSS are those of the main process and of the group's members
    /// the agent reaped.
    Exited {
        /// The attempt.
        run: u64,
        /// Exit code, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// Signal number, when a signal killed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// CPU time, microseconds.
        cpu_us: u64,
        /// Peak RSS, bytes.
        max_rss: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The ping's `seq`.
        seq: u64,
    },
}

impl FromAgent {
    /// An output frame for `line` (bytes as the task wrote them).
    pub fn output(run: u64, stream: Stream, line: &[u8]) -> FromAgent {
        match std::str::from_utf8(line) {
            Ok(s) => FromAgent::Output {
                run,
                stream,
                s: Some(s.to_owned()),
                b: None,
            },
            Err(_) => FromAgent::Output {
                run,
                stream,
                s: None,
                b: Some(base64_encode(line)),
            },
        }
    }

    /// The bytes of an `Output` frame's line; `None` for other frames or bad base64.
    pub fn output_bytes(&self) -> Option<Vec<u8>> {
        match self {
            FromAgent::Output { s: Some(s), .. } => Some(s.as_bytes().to_vec()),
            FromAgent::Output { b: Some(b), .. } => base64_decode(b),
            _ => None,
        }
    }
}

/// Why a line is not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// It does not start with the protocol's name: a stray line.
    NotAFrame,
    /// Another version of the protocol (the word found).
    Version(String),
    /// The right version, but the JSON does not decode (serde's words).
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::NotAFrame => f.write_str("not a protocol frame"),
            FrameError::Version(v) => write!(
                f,
                "the other side speaks {v}, this bansuri speaks {MAGIC}: run the same bansuri binary on every node"
            ),
            FrameError::Malformed(e) => write!(f, "a malformed {MAGIC} frame: {e}"),
        }
    }
}

/// One frame as one line, newline included.
pub fn encode<T: Serialize>(frame: &T) -> String {
    // Serializing these plain types cannot fail (no maps with non-string keys).
    let json = serde_json::to_string(frame).unwrap_or_default();
    format!("{MAGIC} {json}\n")
}

/// A line (without its newline) back into a frame.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, FrameError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    if word != MAGIC {
        return match word.strip_prefix("bansuri-agent/") {
            Some(_) => Err(FrameError::Version(word.to_owned())),
            None => Err(FrameError::NotAFrame),
        };
    }
    serde_json::from_str(rest).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Split srun's `--label` prefix off a line of the step's output: the task rank and the
/// rest. srun pads the rank to the width of the largest one (` 3: ` with 10+ tasks).
pub fn split_label(line: &str) -> Option<(u32, &str)> {
    let (rank, rest) = line.split_once(": ")?;
    let rank = rank.trim_start().parse().ok()?;
    Some((rank, rest))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_a_round_trip_as_one_line_each() {
        let frames = [
            ToAgent::Start {
                to: "n2".into(),
                run: 7,
                task: "train".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), "echo 'a\nb'".into()],
                env: vec![("PATH".into(), "/usr/bin".into())],
                cwd: "/scratch/x y".into(),
                cpus: Some("0-1".into()),
                umask: None,
                nice: Some(5),
            },
            ToAgent::Signal {
                to: "n1".into(),
                run: 7,
                signal: 15,
            },
            ToAgent::Ping { seq: 3 },
            ToAgent::Shutdown,
        ];
        for f in frames {
            let line = encode(&f);
            assert!(line.starts_with("bansuri-agent/1 {"), "{line}");
            assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
            assert_eq!(decode::<ToAgent>(line.trim_end()), Ok(f));
        }
    }

    #[test]
    fn output_keeps_the_bytes_the_task_wrote() {
        for line in [
            &b"plain text"[..],
            b"",
            b"\xff\xfe bin\x00ary \xc3",
            b"ab",
            b"abc",
        ] {
            let f = FromAgent::output(1, Stream::Err, line);
            let back: FromAgent = decode(encode(&f).trim_end()).unwrap();
            assert_eq!(back.output_bytes().as_deref(), Some(line), "{f:?}");
        }
        // Text stays readable in the frame (grep-able in a debug trace).
        assert!(encode(&FromAgent::output(1, Stream::Out, b"hello")).contains("\"s\":\"hello\""));
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(b"M"), "TQ==");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("not*base64"), None);
    }

    #[test]
    fn another_version_or_a_stray_line_is_told_apart() {
        assert_eq!(
            decode::<FromAgent>("bansuri-agent/2 {\"t\":\"pong\",\"seq\":1}"),
            Err(FrameError::Version("bansuri-agent/2".into()))
        );
        assert!(FrameError::Version("bansuri-agent/2".into())
            .to_string()
            .contains("same bansuri binary on every node"));
        assert_eq!(
            decode::<FromAgent>("slurmstepd: error: something"),
            Err(FrameError::NotAFrame)
        );
        assert!(matches!(
            decode::<FromAgent>("bansuri-agent/1 {\"t\":\"nonsense\"}"),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(
            decode::<FromAgent>("bansuri-agent/1 {\"t\":\"pong\",\"seq\":9}\r"),
            Ok(FromAgent::Pong { seq: 9 })
        );
    }

    #[test]
    fn srun_labels_give_the_agents_rank() {
        assert_eq!(
            split_label("0: bansuri-agent/1 {}"),
            Some((0, "bansuri-agent/1 {}"))
        );
        assert_eq!(split_label(" 3: x: y"), Some((3, "x: y")));
        assert_eq!(split_label("no label"), None);
        assert_eq!(split_label("a: b"), None);
    }
}
