# tokensphere — two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs the project with its dev and models extras first.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= runs/demo
# pytest worker processes (pytest-xdist) for `make test` and `make test-slow`: the suite on both cores
WORKERS ?= 2

.PHONY: demo test test-slow bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,models]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tokensphere demo --out $(OUT) --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_kernel.py --record --runs 5

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
