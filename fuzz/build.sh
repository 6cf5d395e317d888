#!/usr/bin/env bash
# Builds every fuzz target (release, debug assertions and overflow checks on,
# no sanitizer: the workspace forbids unsafe code, so the crashes to find are
# panics, overflows, unbounded allocations and hangs, which libFuzzer sees
# without ASan at a fraction of its cost). cargo fuzz needs nightly
# features: RUSTC_BOOTSTRAP=1 enables them on the machine's stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-/work/targets/fuzz-crate}"
[ -d "$(dirname "$FUZZ_TARGET_DIR")" ] || FUZZ_TARGET_DIR="$PWD/target"
cargo fuzz build -O -a -s none --target-dir "$FUZZ_TARGET_DIR" "$@"
