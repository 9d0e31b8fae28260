# Two commands do everything on a fresh machine: `make eval` and `make test`.
# Both create the virtual environment (.venv) first when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

BENCH   ?= micro
# Slowest first: the micro comparison's jobs queue for a pool of one worker per core (local_cpus) in sweep
# order, the method varying slowest (its sweep comes before the shards'), and a long job started last
# would leave the other cores idle at the end. The table's order is its own.
METHOD  ?= vlmteach,pass_at_k,best_of_n,frozen
ARGS    ?=
TEST_WORKERS ?= 2
# The micro world runs SHARDS jobs per method, one CPU thread each (2 cores: 2 shards).
SHARDS  ?= $(if $(filter micro,$(BENCH)),2,1)
# A comma in METHOD means a comparison: one Hydra multirun job per method (and shard), then one table.
comma := ,
SHARDING = $(if $(filter-out 1,$(SHARDS)),hydra/launcher=local_cpus num_shards=$(SHARDS) 'shard=range(0,$(SHARDS))',)
MULTIRUN = $(if $(or $(findstring $(comma),$(METHOD)),$(SHARDING)),--multirun,)

.PHONY: setup browser eval test readme-check data clean-runs bench-gpu bench-e2e bench-throughput train-micro

# Where `make data` puts each benchmark (the bench configs' data_dir points here).
HUB_ruler := hexmSeeU/RULER-Bench
HUB_vbvr  := Video-Reason/VBVR-Bench-Data

VBVR_WHEEL := ../shared/wheels/vbvr_bench-0.1.0-py3-none-any.whl

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the local CPU wheel on CPU-only machines of this project and to
	# PyPI's CUDA build elsewhere.
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# VBVR-Bench's official scorers: the wheel in ../shared/wheels where there is one (built unmodified from
	# the pinned commit, for machines without GitHub), else the `vbvr` extra's git URL.
	if ls $(VBVR_WHEEL) >/dev/null 2>&1; then \
	  $(BIN)/python -m pip install --quiet $(VBVR_WHEEL) 'opencv-python<5' 'opencv-python-headless<5'; \
	else $(BIN)/python -m pip install --quiet -e '.[vbvr]'; fi
	touch $@

setup: $(BIN)/.installed

eval: setup
	$(BIN)/python -m harness.eval $(MULTIRUN) bench=$(BENCH) method=$(METHOD) $(SHARDING) $(ARGS)

# Headless Chromium, in which tests/test_report.py plays the report's videos (Debian's package decodes H.264):
# installed with apt-get where it is missing and we are root; otherwise that test skips and says the command.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "no chromium: the report's browser test will skip; install it with: sudo apt-get install -y chromium"; fi

# Two workers (xdist) over the machine's cores, one test file per worker at a time (a file's end-to-end runs
# are shared by its tests); the 15 slowest tests are listed at the end.
test: setup browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# Every README command that runs on a CPU, in the README's order (tests/readme_commands.py); CI runs it after `make test`.
readme-check: setup
	$(BIN)/python -m tests.readme_commands

# Downloads a benchmark's released data (needs internet); the micro world is generated locally.
data: setup
ifeq ($(BENCH),micro)
	$(BIN)/python -m benchmarks.micro.make_data
else
	$(BIN)/hf download $(HUB_$(BENCH)) --repo-type dataset --local-dir data/$(BENCH)
	$(if $(filter ruler,$(BENCH)),$(BIN)/python -m benchmarks.ruler.download --data-dir data/ruler)
	@echo "then run with bench.data_dir=data/$(BENCH)"
endif

# GPU cost of vlmteach at the paper's shapes (random-weight real-size models, one GPU); writes results/perf/
BENCH_GPU_ARGS ?=
bench-gpu: setup
	$(BIN)/python scripts/bench_gpu.py $(BENCH_GPU_ARGS)

# Every method through python -m harness.eval at the paper's shapes on one GPU, on random-weight checkpoints in the
# real layouts and RULER/VBVR-format fixtures (issue 32); run scripts/pack_e2e_wheels.sh first where the GPU
# machine lacks packages. Writes results/perf/e2e/ (or $OUT).
BENCH_E2E_ARGS ?=
bench-e2e:
	scripts/bench_e2e.sh $(BENCH_E2E_ARGS)

# vlmteach's instances per hour per method.batch_instances (issue 35) through python -m harness.eval, on the e2e
# run's checkpoints and a 16-instance RULER-format fixture of one shape. Writes results/perf/throughput_<gpu>.* (or $OUT).
BENCH_THROUGHPUT_ARGS ?=
bench-throughput:
	scripts/bench_e2e.sh --throughput $(BENCH_THROUGHPUT_ARGS)

# Train the micro VAE, student, light decoder and teacher (one GPU, ~12 min) and swap them into benchmarks/micro/weights.
train-micro: setup
	$(BIN)/python -m lab.micro.training.pipeline --out build/micro-trained --scale full
	$(BIN)/python -m lab.micro.training.pipeline --install build/micro-trained
	$(BIN)/python -m lab.micro.training.measure --out build/micro-trained/measure.json

clean-runs:
	rm -rf results/runs
