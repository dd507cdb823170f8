# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, convert the sample data in the repo and compare the strategies on it
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := build/demo
# CMM, the teacher transformer, the single student and two classic quoters on the repo's GOOG sample:
# one table, and build/demo/compare/report.html with its plots.
DEMO_CONFIGS := $(addprefix configs/backtest_,cmm.toml teacher.toml single_student.toml \
                avellaneda_stoikov.toml fixed_spread.toml)

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
	$(BIN)/cmm compare --out $(OUT)/compare --configs $(DEMO_CONFIGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=20

bench: $(STAMP)
	$(BIN)/python bench/convert.py

# Numba's on-disk cache keys a function on its own file only: after editing a module that
# jitted code in another module calls, drop the cache so no caller keeps the old callee.
clean-cache:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -exec rm -f {} +

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
