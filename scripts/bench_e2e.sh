#!/usr/bin/env bash
# Every method through `python -m harness.eval` at real scale on one GPU (issue 32): random-weight Wan2.2-5B /
# FastWan2.2 / TAEHV / Qwen3-VL-4B checkpoints in the real layouts, RULER- and VBVR-format fixtures (8 each),
# the stub judge on 127.0.0.1, an out-of-memory probe, and the report (benchmarks/e2e/run.py says what each
# step does). Writes e2e_<gpu>.md/.json/_log.txt under $OUT if set, else results/perf/e2e/.
#
#   scripts/bench_e2e.sh [--tiny] [--benches ruler|vbvr|ruler,vbvr] [--methods ...] [--budget-s 560]
#   scripts/bench_e2e.sh --throughput [--tiny] [--instances 16] [--batch 1,4] [--steps 16] [--budget-s 560]
#
# --throughput (first argument): vlmteach's instances per hour per method.batch_instances instead, on the same
# checkpoints and packages (python -m benchmarks.e2e.throughput; RULER only, so no OpenCV or VBVR scorers needed).
#
# Resumable: checkpoints, data and runs stay in build/e2e (git-ignored, so a warm device machine keeps them
# between calls); a call cut by --budget-s is finished by the same command.
#
# Packages for the device machine: run `scripts/pack_e2e_wheels.sh` HERE first (needs PyPI): it writes
# .whl/site.tar.xz (diffusers 0.42.1, transformers 5.23.0, hydra-core, omegaconf, antlr4, ftfy, openai and its
# pydantic/jiter/distro/sniffio, PyAV, the VBVR-EvalKit wheel; ~36 MB), which this script unpacks to build/site.
# Call it with the `run` tool with carry [".whl"]. Plain .whl/*.whl files are installed too (pip --target).
set -euo pipefail
cd "$(dirname "$0")/.."
module=benchmarks.e2e.run
needs="cv2 vbvr_bench"  # VBVR's official scorers
if [ "${1:-}" = --throughput ]; then
  module=benchmarks.e2e.throughput needs=""
  shift
fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
# Every .whl/*.tar.xz unpacks into build/site, which a warm device machine keeps between calls: the packages
# need more than one call's 64 MiB carry (the device's OpenCV 5 fails VBVR's check, and OpenCV 4 alone is
# 41 MB), so a first call carries .whl/site.tar.xz and a second one .whl-cv/opencv.tar.xz (pack script's header).
for pack in .whl*/*.tar.xz; do
  [ -f "$pack" ] && mkdir -p build && tar -C build -xJf "$pack"
done
[ -d build/site ] && export PYTHONPATH=$PWD/build/site${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target build/site .whl/*.whl
  export PYTHONPATH=$PWD/build/site${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && [ ! -d .whl ] && PY=.venv/bin/python
missing=$($PY - $needs <<'PY'
import importlib.util as u
import sys
mods = ["diffusers", "transformers", "hydra", "omegaconf", "ftfy", "openai", "av", "peft", "safetensors", *sys.argv[1:]]
print(" ".join(m for m in mods if u.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
  echo "bench_e2e: missing Python packages: $missing (run scripts/pack_e2e_wheels.sh here and carry .whl: see this script's header)" >&2
  exit 2
fi
exec $PY -m $module "$@"
