# Two commands from a fresh clone:  make run   (opens LlamaDesk on the starter model)
#                                   make test  (runs the whole test suite)
# Both create .venv and install LlamaDesk into it. llama-cpp-python is compiled once per backend by
# packaging/build_llama_wheel.sh (about 15 CPU-minutes) and reused from the wheelhouse afterwards.
# BACKEND=cpu|cuda|metal|vulkan picks the llama.cpp build; CMAKE_ARGS overrides its flags (BACKEND=custom).

PYTHON ?= python3
VENV ?= .venv
BACKEND ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.llamadesk-installed-$(BACKEND)

.PHONY: run test frozen setup lint bench clean

run: $(STAMP)
	@packaging/linux/system_libs.sh $(BIN)/python
	$(BIN)/llamadesk models starter --if-none
	$(BIN)/llamadesk

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

# The frozen app (PyInstaller onedir in dist/, the starter model inside), checked feature by feature.
frozen: $(STAMP)
	@packaging/linux/system_libs.sh $(BIN)/python
	PYTHON=$(BIN)/python packaging/pyinstaller/build.sh

setup: $(STAMP)

$(STAMP): pyproject.toml packaging/build_llama_wheel.sh packaging/wheelhouse.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	wheelhouse="$$(PYTHON=$(BIN)/python packaging/build_llama_wheel.sh $(BACKEND))" && \
	$(BIN)/python -m pip install -q --disable-pip-version-check --find-links "$$wheelhouse" \
		--only-binary llama-cpp-python -e '.[test,dev]'
	rm -f $(VENV)/.llamadesk-installed-*
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check llamadesk tests bench
	$(BIN)/mypy llamadesk

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
