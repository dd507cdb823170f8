# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, convert the sample data in the repo, and compare the strategies out of
#               sample on it (cmm study: trained on the sample's first part, tested on its held-out tail)
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := build/demo
# CMM, the teacher transformer, the single student, the ablations and two classic quoters on the repo's
# GOOG sample, out of sample: three seeds of a tiny model trained on the first 70% of the sample, every
# method backtested on the last 15% with no maker rebate; build/demo/study/study.md and study.html.

.PHONY: install demo test bench clean clean-cache

install: $(STAMP)

# torch is pinned to 2.13.0 in pyproject.toml; its CPU wheel lies on the build
# machines' disk, so pip never reaches for a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/cmm data convert data/samples/GOOG_2012-06-21_10_head.zip --out $(OUT)/goog.npz
	$(BIN)/cmm data info $(OUT)/goog.npz
	$(BIN)/cmm data convert data/samples/ethusdt_usdm_20240808_head.gz --out $(OUT)/ethusdt.npz
	$(BIN)/cmm data info $(OUT)/ethusdt.npz
	$(BIN)/cmm study --config configs/study_tiny.toml --out $(OUT)/study

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=20

bench: $(STAMP)
	$(BIN)/python bench/convert.py

# Numba's on-disk cache keys a function on its own file only: after editing a module that
# jitted code in another module calls, drop the cache so no caller keeps the old callee.
clean-cache:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -exec rm -f {} +

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
