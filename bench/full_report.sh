#!/usr/bin/env bash
# Writes docs/benchmarks.{json,md} and prints the README's table: every group of the
# published report, one after the other, each with REPEATS repeats (default 5). About 90
# minutes on 2 cores; run it on a machine with nothing else running (no test suite).
#
# Usage: bench/full_report.sh [OUTDIR]   (env: PYTHON, default python; REPEATS, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
repeats=${REPEATS:-5}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
all=client-go-json,client-go-proto,pycontroller,pycontroller-pure,official-informer,official-watch
replay=client-go-json,pycontroller,pycontroller-pure,official-informer,official-watch
group() {  # name, run.py arguments...
    local name=$1; shift
    echo "$(date -u +%H:%M) $name" >&2
    "$py" bench/run.py --repeats "$repeats" "$@" \
        --json "$out/$name.json" --markdown "$out/$name.md" > "$out/$name.log" 2>&1
}
group r10k --apiserver-sizes '' --replay 8k=10000 --peers "$replay"
group r150k --apiserver-sizes '' --replay 8k=50000,150000 --burst 150000 \
    --peers client-go-json,pycontroller,pycontroller-pure
group a10k --apiserver-sizes 10000 --replay-sizes '' --peers "$all"
group reads --apiserver-sizes '' --replay 8k=10000 --handler reads --burst 100000 \
    --peers client-go-json,pycontroller,pycontroller-pure
group small --apiserver-sizes 1000 --replay 8k=1000 --replay 4k=10000
"$py" bench/run.py --from-json "$out"/{r10k,r150k,a10k,reads,small}.json \
    --note "Five runs merged ($(date -u +%F), commit $commit, $repeats repeats each, one after the other): the replay server at 10,000 8k pods with every peer; the replay server at 50,000 and 150,000 8k pods with client-go (JSON), pycontroller and pycontroller-pure and a burst of 150,000 events; the local apiserver at 10,000 pods with every peer; the replay server at 10,000 8k pods with a handler that reads spec and status and a burst of 100,000 events; the local apiserver at 1,000 and the replay server at 1,000 8k and 10,000 4k pods with every peer." \
    --json docs/benchmarks.json --markdown docs/benchmarks.md
"$py" bench/run.py --from-json docs/benchmarks.json --summary
