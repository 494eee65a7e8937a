//! The output line splitter: whatever the chunks, it emits exactly the input bytes (minus
//! the newline separators and a `\r` before them), never a piece longer than its limit,
//! and keeps its buffer bounded.
#![no_main]

use bansuri::output::LineSplitter;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose chunk sizes; the rest is the child's output.
    if data.len() < 2 {
        return;
    }
    let (sizes, body) = data.split_at(2);
    let mut s = LineSplitter::new(MAX);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    let mut turn = 0;
    while i < body.len() {
        let step = 1 + sizes[turn % 2] as usize;
        turn += 1;
        let end = (i + step).min(body.len());
        s.push(&body[i..end], &mut |l| out.push(l.to_vec()));
        i = end;
    }
    s.finish(&mut |l| out.push(l.to_vec()));
    assert!(s.is_empty());
    for piece in &out {
        assert!(piece.len() <= MAX, "piece of {} bytes", piece.len());
        assert!(!piece.contains(&b'\n'));
    }
    // Every non-newline byte comes out, in order (a `\r` right before a `\n` is dropped).
    let mut want: Vec<u8> = Vec::with_capacity(body.len());
    for (k, &b) in body.iter().enumerate() {
        let cr_before_nl = b == b'\r' && body.get(k + 1) == Some(&b'\n');
        if b != b'\n' && !cr_before_nl {
            want.push(b);
        }
    }
    let got: Vec<u8> = out.concat();
    // A `\r` that ends a piece split at the limit is kept; allow only that difference.
    let strip = |v: &[u8]| {
        v.iter()
            .copied()
            .filter(|&b| b != b'\r')
            .collect::<Vec<u8>>()
    };
    assert_eq!(strip(&got), strip(&want));
});
