# focaledu: build the book and run the tests in a virtual environment made
# from the pinned lock. `make help` lists the targets.

PYTHON ?= python3
VENV   ?= .venv
UV     ?= uv
BIN    := $(VENV)/bin
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed

# Put the venv first on PATH so notebook kernels and tools run from it.
RUN := PATH="$(abspath $(BIN)):$$PATH" JUPYTER_PLATFORM_DIRS=1

.DEFAULT_GOAL := help
.PHONY: help venv test book sync lock clean clean-venv

help:
	@echo "make book   build the executable book into _build/html"
	@echo "make test   run the tests (TensorFlow, then the 'backends' tests on JAX)"
	@echo "make venv   create/refresh $(VENV) from $(LOCK)"
	@echo "make sync   sync book/*.md with their paired book/*.ipynb (jupytext)"
	@echo "make lock   re-pin $(LOCK) and environment.yml from requirements/requirements.in (needs uv)"
	@echo "make clean  remove build outputs and caches (keeps $(VENV))"
	@echo "make clean-venv  remove $(VENV)"

venv: $(STAMP)

# Reinstalled only when the lock (or pyproject.toml) is newer than the stamp.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -r $(LOCK)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e . --no-deps
	touch $@

# Both passes run even if the first fails; the target fails if either does.
PYTEST_TF  := $(BIN)/python -m pytest tests \
	--nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(wildcard book/*.ipynb)
PYTEST_JAX := $(BIN)/python -m pytest -m backends tests

test: venv
	@status=0; \
	echo "KERAS_BACKEND=tensorflow $(PYTEST_TF)"; \
	$(RUN) KERAS_BACKEND=tensorflow $(PYTEST_TF) || status=1; \
	echo "KERAS_BACKEND=jax $(PYTEST_JAX)"; \
	$(RUN) KERAS_BACKEND=jax $(PYTEST_JAX) || status=1; \
	exit $$status

book: venv
	$(RUN) KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(BIN)/jupyter-book build .
	@echo "Book: _build/html/index.html"

sync: venv
	$(BIN)/jupytext --sync book/*.md

lock:
	$(UV) pip compile --universal --python-version 3.10 \
	    --custom-compile-command "make lock" \
	    requirements/requirements.in -o $(LOCK)
	$(MAKE) venv
	$(BIN)/python requirements/make_environment.py

clean:
	rm -rf _build .pytest_cache .jupyter_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

clean-venv:
	rm -rf $(VENV)
