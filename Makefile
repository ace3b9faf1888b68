# Two commands: `make demo` and `make test`; both install into .venv on first use.
VENV := .venv
STAMP := $(VENV)/.installed
DEVICE ?= auto
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: install demo test test-all lint clean

$(STAMP): pyproject.toml requirements/cpu.lock scripts/setup.sh
	DEVICE=$(DEVICE) bash scripts/setup.sh
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlvr pipeline --config configs/pipeline/tiny.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PYTEST) -q

test-all: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PYTEST) -q -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs
