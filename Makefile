# `make repro` and `make test` work on a fresh clone: they create .venv and install the pinned requirements first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)

.PHONY: venv repro test bench grid results clean

GRID_JOBS ?= 1

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

repro: $(STAMP)  ## the whole pipeline on params.yaml (the embedded synthetic default: offline, a few minutes)
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 dvc repro

test: $(STAMP)  ## the test suite (offline)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: $(STAMP)  ## every benchmark in bench/ and the fault matrix, printing their figures
	for f in bench/*.py; do echo "== $$f"; PATH="$(BIN):$$PATH" $(BIN)/python $$f || exit 1; done

grid: $(STAMP)  ## every missing experiment of experiments.yaml through DVC's queue (GRID_JOBS=N workers), then results
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python src/run_grid.py -j $(GRID_JOBS)

results: $(STAMP)  ## README's results block from experiments.yaml + results/grid.json (runs nothing)
	$(BIN)/python src/results_table.py

clean:
	rm -rf $(VENV)
