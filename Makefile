# Gradient Dynamics, Derived and Verified -- one-command build and test.
#   make book   create .venv (once), install pinned toolchain, build the HTML book (executes notebooks)
#   make test   unit tests + every book notebook under nbval
#   make lab    JupyterLab on the book
#   make sync   regenerate the output-free .ipynb of every MyST .md notebook
#   make check-html  the built book in headless Chromium: console, requests, images, math, reprs,
#               launch buttons, axe-core accessibility (after `make book`; needs a Chromium)
#   make bench  full-size reproductions: every benchmarks/bench_*.py in turn (writes _build/bench/)
#   make clean  remove build outputs (keeps .venv; `make distclean` removes it too)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned for local/CI installs: the CPU build of 2.13.0 is what this project tests with.
TORCH  ?= torch==2.13.0
NOTEBOOKS = $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)

.PHONY: book test lab sync lint clean distclean setup bench check-html

setup: $(STAMP)

# Idempotent setup: re-runs only when the venv is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[book,test,lab]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Book: _build/html/index.html"

test: $(STAMP)
	MPLBACKEND=agg $(BIN)/python -m pytest tests
	MPLBACKEND=agg $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 -p no:cacheprovider $(NOTEBOOKS)

# Every page of _build/html in the system Chromium (set GRADYNAMICS_CHROMIUM to choose one).
check-html: $(STAMP)
	@test -f _build/html/index.html || { echo "check-html: no _build/html; run make book first"; exit 1; }
	$(BIN)/python -m pytest tests/html --built-book=_build/html -p no:cacheprovider -q -rs

lint: $(STAMP)
	$(BIN)/ruff check lib tests conftest.py

lab: $(STAMP)
	$(BIN)/jupyter lab book

sync: $(STAMP)
	$(BIN)/python -m gradynamics.booktools sync

# Full-size runs of the chapters' experiments (not run by CI); see benchmarks/README.md.
bench: $(STAMP)
	@set -e; total=$$(date +%s); summary=""; \
	for script in $$(ls benchmarks/bench_*.py | sort); do \
		echo "== $$script"; start=$$(date +%s); \
		MPLBACKEND=agg $(BIN)/python $$script; \
		summary="$$summary$$script: $$(( $$(date +%s) - start )) s\n"; \
	done; \
	printf "== wall time per script\n$${summary}total: $$(( $$(date +%s) - total )) s\n"

clean:
	rm -rf _build .pytest_cache .hypothesis
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
