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

# Developers and CI have the CIFAR-10 JPEG mirror beside the repository; the
# chapters use it when present and fall back to labelled synthetic data when not.
export FOCALEDU_CIFAR10 ?= $(abspath $(wildcard ../shared/data/cifar10-jpeg.zip))

.DEFAULT_GOAL := help
.PHONY: help venv test test-torch test-colab browser-test book book-student assets notebooks lock clean clean-venv

help:
	@echo "make book   build the executable book into _build/html (warnings are errors; BOOK_FLAGS= relaxes)"
	@echo "make book-student  the same book without the solutions, into _build/student"
	@echo "make assets fetch MathJax, require.js and the widgets manager into $(VENDOR) (once; npm registry)"
	@echo "make test   run the tests (TensorFlow, then the 'backends' tests on JAX)"
	@echo "make test-torch  run the 'backends' tests and every chapter (--nbval-lax) on PyTorch, in $(TORCH_VENV) (the lock plus torch)"
	@echo "make test-colab  run each chapter alone (as on Colab) in $(COLAB_VENV), with Colab's versions and focaledu's wheel"
	@echo "make browser-test  build the book and open it in headless Chromium (tests/test_browser.py)"
	@echo "make venv   create/refresh $(VENV) from $(LOCK)"
	@echo "make notebooks  regenerate and execute book/*.ipynb from book/*.md (PAGES=\"name ...\" for some)"
	@echo "make lock   re-pin $(LOCK) and environment.yml from requirements/requirements.in (needs uv)"
	@echo "make clean  remove build outputs and caches (keeps $(VENV))"
	@echo "make clean-venv  remove $(VENV), $(TORCH_VENV) and $(COLAB_VENV)"

venv: $(STAMP)

# Reinstalled only when the lock (or pyproject.toml) is newer than the stamp.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -r $(LOCK)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e . --no-deps
	touch $@

# Both passes run even if the first fails; the target fails if either does.
# The notebooks run strictly (--nbval): every stored output must equal a fresh
# run, except in cells tagged nbval-ignore-output (start-up logs, timings,
# widgets, and results that depend on which data the machine has).
PYTEST_TF  := $(BIN)/python -m pytest --durations=25 tests \
	--nbval --nbval-current-env --nbval-cell-timeout=600 $(wildcard book/*.ipynb)
PYTEST_JAX := $(BIN)/python -m pytest --durations=15 -m backends tests

test: venv
	@status=0; \
	echo "KERAS_BACKEND=tensorflow $(PYTEST_TF)"; \
	$(RUN) KERAS_BACKEND=tensorflow $(PYTEST_TF) || status=1; \
	echo "KERAS_BACKEND=jax $(PYTEST_JAX)"; \
	$(RUN) KERAS_BACKEND=jax $(PYTEST_JAX) || status=1; \
	exit $$status

# The PyTorch backend in its own venv: the lock plus torch. torch with its CUDA
# libraries is about 6 GB, too much for `make test` on a fresh machine, and it
# is a test dependency only (focaledu never requires it). The chapters run with
# --nbval-lax: their stored outputs are TensorFlow's, so only errors count.
TORCH_VERSION ?= 2.14.1
TORCH_VENV    ?= .venv-torch
TORCH_BIN     := $(TORCH_VENV)/bin
TORCH_STAMP   := $(TORCH_VENV)/.installed-$(TORCH_VERSION)
TORCH_RUN     := PATH="$(abspath $(TORCH_BIN)):$$PATH" JUPYTER_PLATFORM_DIRS=1 KERAS_BACKEND=torch

$(TORCH_STAMP): $(LOCK) pyproject.toml
	test -x $(TORCH_BIN)/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_BIN)/python -m pip install --disable-pip-version-check --quiet -r $(LOCK) torch==$(TORCH_VERSION)
	$(TORCH_BIN)/python -m pip install --disable-pip-version-check --quiet -e . --no-deps
	touch $@

test-torch: $(TORCH_STAMP)
	@status=0; \
	$(TORCH_RUN) $(TORCH_BIN)/python -m pytest -m backends tests || status=1; \
	$(TORCH_RUN) $(TORCH_BIN)/python -m pytest --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=600 $(wildcard book/*.ipynb) || status=1; \
	exit $$status

# Each chapter alone, as a reader opens it on Colab: one notebook in an empty
# folder, no repository around it, no CIFAR-10 mirror, focaledu installed from
# its wheel (not editable) into $(COLAB_VENV), which holds Colab's versions
# (requirements/colab.txt) on this machine's Python. The venv is rebuilt from
# scratch only when colab.txt changes; the wheel is rebuilt every time.
COLAB_VENV   ?= .venv-colab
COLAB_BIN    := $(COLAB_VENV)/bin
COLAB_REQS   := requirements/colab.txt
COLAB_STAMP  := $(COLAB_VENV)/.installed
COLAB_WHEELS := .colab-wheel
COLAB_PIP    := $(COLAB_BIN)/python -m pip --disable-pip-version-check --quiet

$(COLAB_STAMP): $(COLAB_REQS)
	rm -rf $(COLAB_VENV)
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_PIP) install -r $(COLAB_REQS)
	touch $@

# pip check runs before the chapters and fails the target after them: a
# dependency conflict of the pins (or of focaledu's requirements) is reported
# without hiding the chapters' results.
test-colab: $(COLAB_STAMP)
	rm -rf $(COLAB_WHEELS)
	$(COLAB_PIP) wheel --no-deps . -w $(COLAB_WHEELS)
	$(COLAB_PIP) install --no-deps --force-reinstall $(COLAB_WHEELS)/focaledu-*.whl
	@status=0; \
	$(COLAB_BIN)/python -m pip check || { echo "pip check: the packages of $(COLAB_VENV) conflict (above)"; status=1; }; \
	env -u FOCALEDU_CIFAR10 KERAS_BACKEND=tensorflow \
	    $(COLAB_BIN)/python tests/scripts/run_chapters_alone.py || status=1; \
	exit $$status

# tests/test_browser.py also runs in `make test`, where it skips without a built
# book or Chromium; this target builds the book first and runs only it.
browser-test: book
	$(RUN) $(BIN)/python -m pytest tests/test_browser.py -v

# Offline HTML: MathJax, require.js and the Jupyter widgets HTML manager are
# served from the book's own _static (see _config.yml: mathjax_path,
# nb_ipywidgets_js), never from a CDN. They are fetched once from the npm
# registry into $(VENDOR) (gitignored); later builds need no network.
NPM                  ?= npm
MATHJAX_VERSION      := 3.2.2
REQUIREJS_VERSION    := 2.3.8
HTML_MANAGER_VERSION := 1.0.15
VENDOR       := book/_static/vendor
VENDOR_STAMP := $(VENDOR)/.versions-$(MATHJAX_VERSION)-$(REQUIREJS_VERSION)-$(HTML_MANAGER_VERSION)

assets: $(VENDOR_STAMP)

$(VENDOR_STAMP):
	@command -v $(NPM) >/dev/null || { echo "error: npm is needed once to fetch $(VENDOR) (or copy that folder from another checkout)"; exit 1; }
	rm -rf $(VENDOR) book/_static/.vendor.tmp
	mkdir -p book/_static/.vendor.tmp/npm
	cd book/_static/.vendor.tmp/npm && $(NPM) pack --silent \
	    mathjax@$(MATHJAX_VERSION) requirejs@$(REQUIREJS_VERSION) \
	    @jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION) >/dev/null
	cd book/_static/.vendor.tmp && for t in npm/*.tgz; do \
	    n=$$(basename $$t .tgz); mkdir -p $$n && tar -xzf $$t -C $$n --strip-components=1 || exit 1; done
	mkdir -p $(VENDOR)/mathjax $(VENDOR)/requirejs $(VENDOR)/html-manager
	cp -R book/_static/.vendor.tmp/mathjax-$(MATHJAX_VERSION)/es5/. $(VENDOR)/mathjax/
	cp book/_static/.vendor.tmp/mathjax-$(MATHJAX_VERSION)/LICENSE $(VENDOR)/mathjax/
	cp book/_static/.vendor.tmp/requirejs-$(REQUIREJS_VERSION)/require.js $(VENDOR)/requirejs/
	cp book/_static/.vendor.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION)/dist/embed-amd.js \
	    book/_static/.vendor.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION)/dist/*.woff* \
	    book/_static/.vendor.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION)/dist/*.ttf \
	    book/_static/.vendor.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION)/dist/*.eot \
	    book/_static/.vendor.tmp/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION)/dist/*.svg \
	    $(VENDOR)/html-manager/
	rm -rf book/_static/.vendor.tmp
	touch $@

# -W --keep-going: any Sphinx/MyST warning fails the build, after listing all
# of them. `make book BOOK_FLAGS=` builds despite warnings.
BOOK_FLAGS ?= --warningiserror --keep-going
JB := $(RUN) KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(BIN)/jupyter-book build

# jupyter-cache re-executes a page only when its code cells change, but the
# pages also print and run the library: a change to focaledu/ or to the lock
# starts the cache afresh (as the publishing workflow keys its cache).
# The cache starts with the outputs of the committed notebooks (tools/notebooks.py
# --seed-cache), which `make test` checks against a fresh run of every chapter;
# only a page whose notebook is out of date executes. BOOK_EXECUTE=all executes
# every page instead.
EXEC_CACHE := _build/.jupyter_cache
LIBRARY_HASH = $(shell find -L focaledu -name '*.py' -o -name '*.json' | LC_ALL=C sort | xargs cat $(LOCK) | sha256sum | cut -c1-16)
BOOK_EXECUTE ?= changed

book: venv assets
	@if [ -d $(EXEC_CACHE) ] && [ "$$(cat $(EXEC_CACHE)/focaledu.hash 2>/dev/null)" != "$(LIBRARY_HASH)" ]; then \
	    echo "focaledu/ or the lock changed since the cached execution: the cache starts afresh"; \
	    rm -rf $(EXEC_CACHE); fi
	@case "$(BOOK_EXECUTE)" in \
	    all) rm -rf $(EXEC_CACHE); echo "BOOK_EXECUTE=all: every page runs";; \
	    changed) $(RUN) $(BIN)/python tools/notebooks.py --seed-cache $(EXEC_CACHE);; \
	    *) echo "BOOK_EXECUTE must be 'changed' (default) or 'all'; got '$(BOOK_EXECUTE)'"; exit 2;; \
	esac
	$(JB) $(BOOK_FLAGS) .
	@mkdir -p $(EXEC_CACHE) && echo "$(LIBRARY_HASH)" > $(EXEC_CACHE)/focaledu.hash
	@echo "Book: _build/html/index.html"

# The student edition: sphinx-exercise's hide_solutions drops every solution.
# It shares the execution cache of `make book`.
book-student: venv assets
	$(BIN)/python -m focaledu.student book-config _config.yml _build/student-config.yml \
	    --cache $(abspath _build/.jupyter_cache)
	rm -rf _build/.student
	$(JB) $(BOOK_FLAGS) . --config _build/student-config.yml --path-output _build/.student
	rm -rf _build/student && mv _build/.student/_build/html _build/student && rm -rf _build/.student
	@echo "Student book: _build/student/index.html"

# The notebooks Colab, Binder and JupyterLab open are generated from the MyST
# sources (tools/notebooks.py): setup cells written from _config.yml and
# pyproject.toml, exercises as plain Markdown, then executed. `make notebooks
# PAGES="04_gated_aggregation"` regenerates some pages only.
notebooks: venv
	cd book && $(RUN) KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} ../$(BIN)/python ../tools/notebooks.py $(PAGES)

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
	rm -rf $(VENV) $(TORCH_VENV) $(COLAB_VENV)
