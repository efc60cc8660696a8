# Every target builds what it needs: a fresh clone runs `make test` or `make demo` and nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TF_VENV := .venv-tf
TF_STAMP := $(TF_VENV)/.installed
TYPECHECK_TREE := build/typecheck

.PHONY: all venv tf-venv tools crds docs lint typecheck test test-unit test-integration demo bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[convert,agent,dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

# onnx2tf and TensorFlow for the TensorFlow targets, in their own environment (their numpy, onnx
# and onnxruntime pins clash with ours); the workers run it as a child process. The lock file is
# onnx2tf's whole closure, installed as is (--no-deps) and checked (pip check).
$(TF_STAMP): requirements-tf.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --quiet --upgrade pip
	$(TF_VENV)/bin/pip install --quiet --no-deps -r requirements-tf.txt
	$(TF_VENV)/bin/pip check >/dev/null
	touch $(TF_STAMP)

tf-venv: $(TF_STAMP)

# Prints nothing but progress; the servers land in ~/.cache/modelfleet/tools (or $$MODELFLEET_TOOLS).
tools:
	@bash hack/tools.sh >/dev/null

# The chart and the GitOps example ship copies; a test fails if they drift.
crds: $(STAMP)
	$(BIN)/python -m modelfleet.api.crdgen crds
	cp crds/*.yaml charts/modelfleet/crds/
	cp crds/*.yaml examples/gitops/crds/
	$(BIN)/python -m modelfleet.api.docgen docs/reference.md

docs: crds

# mypy cannot follow setuptools' editable import hook, so it checks a link tree that puts the
# role folders where the import root says they are.
$(TYPECHECK_TREE): $(STAMP) FORCE
	@rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/modelfleet
	@for f in modelfleet/*; do ln -s "$$PWD/$$f" $(TYPECHECK_TREE)/modelfleet/; done
	@for d in operator workers agent dev; do ln -s "$$PWD/$$d" $(TYPECHECK_TREE)/modelfleet/$$d; done
FORCE:

# import-linter reads the same link tree as mypy (the contracts are in pyproject.toml).
lint: $(TYPECHECK_TREE)
	cd $(TYPECHECK_TREE) && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports --config $(CURDIR)/pyproject.toml --no-cache
	$(BIN)/ruff check modelfleet operator workers agent dev tests bench
	$(BIN)/ruff format --check modelfleet operator workers agent dev tests bench

typecheck: $(TYPECHECK_TREE)
	cd $(TYPECHECK_TREE) && MYPYPATH=. $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p modelfleet

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-integration: $(STAMP) $(TF_STAMP) tools
	$(BIN)/pytest tests/integration -q

# The fleet scenario and the fault matrix are ordered and timing-sensitive: each gets its own
# sequential pass.
test: lint typecheck tools $(TF_STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not fleet and not zoo and not faults"
	$(BIN)/pytest -q -m fleet
	$(BIN)/pytest -q -m faults

# The fault matrix (tests/faults): the operator, agents, MinIO and the API server killed or
# paused at named points of a conversion and a rollout; writes the matrix to docs/faults.md.
.PHONY: faults
faults: $(STAMP) tools
	MODELFLEET_FAULTS_DOC=docs/faults.md $(BIN)/pytest -q -m faults tests/faults

# The real-architecture zoo (tests/zoo): converts and validates every net in every format, each
# step in its own process, and runs the tolerance study; writes docs/zoo.md and
# tests/zoo/results.json, then checks issue 11's contract on them (marker `zoo`); and the
# ERNIE-like encoder's onnx + tf-savedmodel + tflite conversion through real Jobs (issue 15).
.PHONY: zoo
zoo: $(STAMP) $(TF_STAMP) tools
	PYTHONPATH=tests $(BIN)/python -m zoo
	$(BIN)/pytest -q -m zoo tests/zoo tests/integration/conversion/test_tensorflow_targets.py

demo: $(STAMP) tools
	$(BIN)/modelfleet demo

bench: $(STAMP) tools
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TF_VENV) build .pytest_cache .mypy_cache .ruff_cache
