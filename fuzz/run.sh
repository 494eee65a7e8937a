#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] - run every fuzz target for SECONDS (default 60) each, starting from
# the committed seed corpus (copied, so the tree stays clean). Installs the nightly
# toolchain's cargo-fuzz if missing. A crash fails the script and leaves the input in
# fuzz/artifacts/<target>/: turn it into a regression test, then add it to the corpus.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-60}
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in config splitter; do
    mkdir -p "$work/$target"
    cp corpus/"$target"/* "$work/$target/"
    echo "fuzz: $target for ${secs}s"
    if ! cargo +nightly fuzz run "$target" "$work/$target" -- -max_total_time="$secs" \
        >"$work/$target.log" 2>&1; then
        tail -n 40 "$work/$target.log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^Done' "$work/$target.log" || true
done
