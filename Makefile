# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SRC := frs_cli tests benchmarks sample_media

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed

## demo: install, enrol the two sample portraits, scan the sample clip, print the matches
demo: $(VENV)/.installed
	mkdir -p demo-out
	$(BIN)/frs enroll -w demo-out/watchlist.db sample_media/Grace_Hopper.jpg sample_media/Eileen_Collins.png
	$(BIN)/frs scan -w demo-out/watchlist.db sample_media/demo.mp4

## test: install with test extras, lint, type-check, run the tests
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-out
