#!/usr/bin/env bash
# Runs the whole Fluxo test suite: unit tests, wire-level protocol tests, and
# real Kafka clients (kcat, Python, Java, librdkafka's own test suite) against a
# real broker process.
# Installs what is missing first (compat/setup.sh). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export FLUXO_BIN="$CARGO_TARGET_DIR/release/fluxo"

echo "== setup"
bash compat/setup.sh

echo "== build (release: one profile for the broker and its tests)"
cargo build --release --workspace --all-targets

echo "== unit and protocol tests"
cargo test --release --workspace

echo "== compatibility tests (real clients)"
python3 -m pytest compat -q -p no:cacheprovider

echo "== librdkafka's own test suite (stable subset; --all for the full matrix)"
compat/librdkafka/run

echo "== benchmark smoke run (a few seconds per workload, Fluxo only; numbers not asserted)"
bench/run --smoke --no-machine --out "${TMPDIR:-/tmp}/fluxo-bench-smoke" --results "${TMPDIR:-/tmp}/fluxo-bench-smoke.md"
