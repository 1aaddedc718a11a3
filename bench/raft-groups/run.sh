#!/usr/bin/env bash
# The measurement matrix behind README.md. Each run is bounded (about 10 s) and niced.
# Usage: bench/raft-groups/run.sh   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")"
nice -n 10 cargo build --release -q
B="${CARGO_TARGET_DIR:-target}/release/raft-groups"
run() { echo; echo "\$ raft-groups $*"; timeout 180 nice -n 10 "$B" "$@"; }

# idle cost + failover of broker 1, openraft as shipped, heartbeat 50/100/500 ms
for n in 100 1000 3000; do
  for hb in 50 100 500; do
    run --groups "$n" --mode pergroup --hb "$hb" --idle-secs 5 --failover
  done
done
# per-broker ticker driving trigger().heartbeat(); quiescent groups + broker liveness
for n in 1000 3000; do
  run --groups "$n" --mode coalesced --hb 100 --idle-secs 5 --failover
  run --groups "$n" --mode quiescent --hb 100 --lease-ms 1000 --idle-secs 5 --failover
done
# commit throughput/latency of 100-byte entries across 1,000 groups
run --groups 1000 --mode pergroup --hb 100 --idle-secs 1 --writers 64 --write-secs 5
run --groups 1000 --mode pergroup --hb 100 --idle-secs 1 --writers 1000 --write-secs 5
run --groups 100 --mode pergroup --hb 100 --idle-secs 1 --writers 64 --write-secs 5
# failover right after writes (followers' leader lease still fresh)
run --groups 1000 --mode pergroup --hb 100 --idle-secs 1 --writers 64 --write-secs 3 --failover
run --groups 1000 --mode quiescent --hb 100 --lease-ms 1000 --idle-secs 1 --writers 64 --write-secs 3 --failover
