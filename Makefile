# `make repro` and `make test` work on a fresh clone: they create .venv and install the pinned requirements first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)

.PHONY: venv repro test bench grid results real infer lock clean

GRID_JOBS ?= 1
GRID ?= experiments.yaml

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

repro: $(STAMP)  ## the whole pipeline on params.yaml (the embedded synthetic default: offline, a few minutes)
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 dvc repro

test: $(STAMP)  ## the test suite (offline)
	PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: $(STAMP)  ## every benchmark in bench/ and the fault matrix, printing their figures
	for f in bench/*.py; do echo "== $$f"; PATH="$(BIN):$$PATH" $(BIN)/python $$f || exit 1; done

lock:  ## regenerate requirements.txt (every pin) from pyproject.toml's direct dependencies, in a throwaway venv
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check pip-tools==7.6.2
	.venv-lock/bin/pip-compile --quiet --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.txt pyproject.toml
	sed -i 's/^torch==\(.*\)+cpu$$/torch==\1/' requirements.txt  # a local CPU wheel's label: pin PyPI's version
	rm -rf .venv-lock

grid: $(STAMP)  ## every missing experiment of $(GRID) through DVC's queue (GRID_JOBS=N workers), then results
	# dvc.lock's outputs in the local cache first (a no-op once they are): run_grid refuses a cache that lacks the
	# lock's directory listings (grid.missing_listings), which a queued experiment restoring a stage would need
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 dvc repro
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 $(BIN)/python src/run_grid.py --grid $(GRID) -j $(GRID_JOBS)

results: $(STAMP)  ## the generated results blocks (README.md, docs/experiments.md, finetune.md, text.md, study.md, claims.md, minirocket.md, costs.md) from the committed grids (runs nothing)
	$(BIN)/python src/results_table.py --grid experiments.yaml
	$(BIN)/python src/results_table.py --grid experiments-quick.yaml
	$(BIN)/python src/results_table.py --grid experiments-finetune.yaml
	$(BIN)/python src/results_table.py --grid experiments-text.yaml
	$(BIN)/python src/results_table.py --grid experiments-study.yaml
	$(BIN)/python src/results_table.py --grid experiments-claims.yaml
	$(BIN)/python src/results_table.py --grid experiments-minirocket.yaml
	$(BIN)/python src/results_table.py --grid experiments-precision.yaml

REAL_NAME := real-$(shell date +%Y%m%d-%H%M%S)
HEADLINE := Experiment|^zero_shot_auc_macro$$|^linear_probe_auc_macro$$|^ecg_to_report_r10$$|^ecg_embedding_mean_cosine$$|^finetune_gain_f1_auc_macro$$
real: $(STAMP)  ## the whole pipeline on your own PTB-XL copy: make real PTBXL=/path/to/ptb-xl (an experiment, params.yaml unchanged)
	@test -n "$(PTBXL)" || { echo "error: set PTBXL=/path/to/ptb-xl (the folder holding ptbxl_database.csv and records100/)"; exit 2; }
	@test -f "$(PTBXL)/ptbxl_database.csv" || { echo "error: $(PTBXL) holds no ptbxl_database.csv: point PTBXL at a PTB-XL folder"; exit 2; }
	PATH="$(BIN):$$PATH" HF_HUB_OFFLINE=1 dvc exp run --temp -n $(REAL_NAME) -S data.source=local -S data.path=$(abspath $(PTBXL))
	@PATH="$(BIN):$$PATH" dvc exp show --no-pager --md --drop '.*' --keep '$(HEADLINE)' | grep -E 'Experiment|---|$(REAL_NAME)' || true
	@echo "$(REAL_NAME) ran in a temporary copy: params.yaml and metrics/ are untouched; compare with"
	@echo "  .venv/bin/dvc exp show   and apply it with   .venv/bin/dvc exp apply $(REAL_NAME)"

infer: $(STAMP)  ## the trained model on your own ECGs: make infer ECG="a.hea b.npy" [ARGS="--rate 500 --leads I,II,... --plot --out DIR"] (docs/inference.md)
	@test -n "$(ECG)" || { echo "error: set ECG=\"path1 path2\": WFDB records (.hea/.dat) or .npy arrays (with ARGS=\"--rate HZ --leads I,II,...\")"; exit 2; }
	HF_HUB_OFFLINE=1 $(BIN)/python src/infer.py $(ECG) $(ARGS)

clean:
	rm -rf $(VENV)
