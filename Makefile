# Shortcuts for README's two commands; both create .venv on first use.
PY ?= python3
VENV := .venv

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

.PHONY: demo test test-fast lint docs figures bench
demo: $(VENV)/.installed
	$(VENV)/bin/jaxfeat run spikes

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -n 2

# the inner loop: everything not marked slow, notebook or paper (under 3 minutes on 2 cores)
test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -n 2 -m "not slow and not notebook and not paper"

lint: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e ".[lint]"
	$(VENV)/bin/ruff check jaxfeat tests benchmarks
	$(VENV)/bin/ruff format --check jaxfeat tests benchmarks
	$(VENV)/bin/pyright --pythonpath $(VENV)/bin/python jaxfeat

# the documentation site (mkdocs-material + mkdocstrings), built strictly into site/
docs: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict


# the quick presets' figures the guides show (docs/figures/NAME-quick.png; about 2 minutes)
FIGURES := spikes equivalence random_features teacher_student local_convergence gradient_features
figures: $(VENV)/.installed
	for e in $(FIGURES); do \
	  $(VENV)/bin/jaxfeat run $$e --out build/figures/$$e.zarr --overwrite --quiet && \
	  cp build/figures/$$e.png docs/figures/$$e-quick.png || exit 1; \
	done
