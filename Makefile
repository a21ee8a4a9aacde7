# The two commands a user needs: `make demo` and `make test`.
# A Python >= 3.12 is found on PATH or under ~/.pyenv/versions; the virtual environment is .venv.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

define FIND_PYTHON
for c in python3.13 python3.12 python3 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
  p=$$(command -v $$c 2>/dev/null) || continue; \
  if $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then echo $$p; exit 0; fi; \
done; exit 1
endef
export FIND_PYTHON

.PHONY: demo test test-fast bench calibrate lint clean venv docs docs-serve

venv: $(STAMP)

$(STAMP): pyproject.toml
	@py=$$(sh -c "$$FIND_PYTHON") || { \
	  echo "error: multilevel needs Python >= 3.12 (PyMC 6 and ArviZ 1 require it), and none was found" >&2; \
	  echo "       on PATH (python3.13, python3.12, python3) or in ~/.pyenv/versions/3.1[2-9]*." >&2; \
	  echo "       Install one, e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv'," >&2; \
	  echo "       then run make again." >&2; exit 1; }; \
	echo "Using $$py ($$($$py --version))"; \
	test -x $(PY) || $$py -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/multilevel demo --models models --out reports

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	@$(PY) -m pytest -q -ra --durations=15 -n 2 --dist loadfile; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/run.py

# Simulation-based calibration of every sampler path and the REML intervals' coverage (about an
# hour on 2 cores): bench/CALIBRATION.md and bench/calibration_ranks.png.
calibrate: $(STAMP)
	$(PY) bench/calibrate.py

# The documentation site: notebooks executed (cached in build/docs/ while unchanged), API reference
# from the docstrings, warnings are errors. MULTILEVEL_NB_DRAWS=200 make docs builds it quickly.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg $(VENV)/bin/mkdocs serve

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) reports .pytest_cache site build/docs
