#!/usr/bin/env bash
# Issue 9's check on a machine with >= 2 GPUs: two shards of the micro benchmark run at once, one per
# GPU (hydra/launcher=local_gpus), then the same instances run unsharded on one GPU; the merged shards
# must equal the single run instance by instance. Writes its evidence under ${OUT:-results/perf/multi_gpu}.
set -euo pipefail
out=${OUT:-results/perf/multi_gpu}; mkdir -p "$out"; work=$(mktemp -d)
limit=${LIMIT:-48}; method=${METHOD:-pass_at_k}
nvidia-smi -L | tee "$out/gpus.txt"
( while true; do date +%T; nvidia-smi --query-compute-apps=gpu_bus_id,pid,used_memory --format=csv,noheader; sleep 0.5; done ) > "$out/nvidia_smi_during_shards.log" 2>&1 &
watcher=$!
start=$(date +%s)
python3 -m harness.eval -m hydra/launcher=local_gpus bench=micro method=$method limit=$limit \
  num_shards=2 'shard=range(0,2)' output_root=$work/sharded run_name=r progress=false > "$out/sharded.log" 2>&1
echo "two shards on two GPUs: $(( $(date +%s) - start )) s" | tee "$out/summary.txt"
kill $watcher
start=$(date +%s)
HARNESS_GPUS= CUDA_VISIBLE_DEVICES=0 python3 -m harness.eval bench=micro method=$method limit=$limit \
  output_root=$work/single run_name=r progress=false > "$out/single.log" 2>&1
echo "one run on one GPU: $(( $(date +%s) - start )) s" | tee -a "$out/summary.txt"
sharded=$work/sharded/micro/$method/r; single=$work/single/micro/$method/r
python3 -m harness.status "$sharded" | tee "$out/status.txt"
python3 - "$sharded" <<'PY' | tee "$out/pinning.txt"
import json, sys, collections
from harness.rundir import RunDir
seen = collections.Counter((r["shard"], r["versions"]["cuda_visible_devices"], r["versions"]["device"]) for r in RunDir(sys.argv[1]).latest_records().values())
for (shard, gpu, name), n in sorted(seen.items()):
    print(f"shard {shard}: CUDA_VISIBLE_DEVICES={gpu} ({name}) {n} instances")
PY
python3 scripts/compare_runs.py "$sharded" "$single" | tee "$out/compare.txt"
python3 -m harness.table "$sharded" > "$out/table_sharded.md"; python3 -m harness.table "$single" > "$out/table_single.md"
