# facerefl — `make help` lists targets. `make test` is exactly what CI runs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASSETS_STAMP := $(VENV)/.assets
KERNELS_STAMP := $(VENV)/.kernels
GLTF_DIR := tests/export/gltf_validator
GLTF_STAMP := $(VENV)/.gltf-validator
# the bundled sample photos (package data, see facerefl/resources)
SAMPLES := data/samples

.PHONY: help setup assets test test-all bench demo data train train-noskip adapt testset eval eval-small clean

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(ASSETS_STAMP): $(STAMP) facerefl/assets.py
	$(VPY) -m facerefl.assets fetch
	touch $(ASSETS_STAMP)

# compile the fused shading kernels once (numba caches them beside the source)
$(KERNELS_STAMP): $(STAMP) facerefl/render/_fused_kernels.py
	$(VPY) -m facerefl.render.fused
	touch $(KERNELS_STAMP)

# the Khronos glTF validator (npm, pinned by the lock file) for the face.glb test; needs node
$(GLTF_STAMP): $(GLTF_DIR)/package.json $(GLTF_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p $(VENV)/node && cp $(GLTF_DIR)/package.json $(GLTF_DIR)/package-lock.json $(VENV)/node/ && \
	  npm ci --prefix $(VENV)/node --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: skipping the glTF validator (its test will be skipped)"; fi

setup: $(STAMP) $(ASSETS_STAMP) $(KERNELS_STAMP) $(GLTF_STAMP)  ## create .venv, install pinned deps, fetch pinned assets, compile kernels, glTF validator (idempotent)

test: setup  ## run the default (offline, CPU) test suite
	$(VPY) -m pytest -q -m "not slow and not gpu"

test-all: setup  ## run every test, slow ones included
	$(VPY) -m pytest -q

bench: setup  ## run benchmarks; numbers go to bench/*.json
	OMP_WAIT_POLICY=PASSIVE $(VPY) -m bench

demo: setup  ## fit the bundled sample photo with the shipped CPU weights
	$(VPY) optimize.py image=$(SAMPLES)/astronaut.png output_dir=outputs/astronaut overwrite=true
	@echo "report: $(CURDIR)/outputs/astronaut/report.html"

DATA_DIR ?= $(HOME)/.cache/facerefl/synthetic/train-cpu
N ?= 2000

data: setup  ## cache N (2000) synthetic training examples in DATA_DIR and build the Monte Carlo test set
	$(VPY) -m facerefl.data.make_cache --out $(DATA_DIR) --n $(N) --image 256 --texture 128 --detail 128 --workers 2
	$(VPY) -m facerefl.data.make_testset

train: setup  ## train every CPU-preset network and export weights to data/checkpoints/cpu
	$(VPY) -m facerefl.tasks.train_all

train-noskip: setup  ## retrain the autoencoders without skips on cpu's data (§8.4.1) → data/checkpoints/cpu_noskip
	OMP_WAIT_POLICY=PASSIVE $(VPY) -m facerefl.tasks.train_all --no-skip --data-commit 729ddba --cache-workers 1

# sessions 7-9's adaptation (docs/photo_unwrap.md): photo-unwrapped caches once, then the stages
# (finished ones kept, an interrupted one resumed); writes ADAPT_OUT, not the shipped folder.
# A run root holding exports of other step counts is reused as it is: use a fresh ADAPT_RUN.
ADAPT_DIR ?= outputs/photo_unwrap
ADAPT_OUT ?= outputs/adapt/cpu_x10_photo
ADAPT_RUN ?= outputs/adapt
ADAPT_SIZES := --image 256 --texture 128 --detail 128 --workers 2 --unwrap photo

adapt: setup  ## adapt cpu_x10 to photo-unwrapped textures (as the shipped cpu_x10_photo) → ADAPT_OUT (~2.8 h on 2 cores)
	test -f $(ADAPT_DIR)/val/manifest.json || $(VPY) -m facerefl.data.make_cache --out $(ADAPT_DIR)/val --n 1024 --seed 500000 --shard-size 1024 $(ADAPT_SIZES)
	test -f $(ADAPT_DIR)/cache/manifest.json || $(VPY) -m facerefl.data.make_cache --out $(ADAPT_DIR)/cache --n 9600 --seed 0 --shard-size 3200 $(ADAPT_SIZES)
	$(VPY) -m facerefl.tasks.adapt --base data/checkpoints/cpu_x10 --cache $(ADAPT_DIR)/cache --val $(ADAPT_DIR)/val --out $(ADAPT_OUT) --run-root $(ADAPT_RUN) --threads 2 --reuse

testset: setup  ## build the 100-example Monte Carlo test set once (asset cache; ~1-3 min)
	@$(VPY) -c "import sys; from facerefl.data.make_testset import default_out; sys.exit(not (default_out() / 'manifest.json').is_file())" \
	  || $(VPY) -m facerefl.data.make_testset

eval-small: testset  ## quick evaluation: 4 test examples (full, no_renderer), 3-lighting Figure 7, sample photo
	$(VPY) evaluate.py -m ablation=full,no_renderer n_examples=4 figure7.lightings=3 workers=2
	$(VPY) evaluate.py photos=$(SAMPLES)

eval: testset  ## Table 1 on the 100-example test set, all ablations, Figures 5 and 7, sample photos
	$(VPY) evaluate.py -m ablation=full,paper_fit,no_skip,no_renderer,no_enhancer workers=2
	$(VPY) evaluate.py photos=$(SAMPLES)

clean:  ## remove caches (not the venv)
	rm -rf .pytest_cache outputs multirun
