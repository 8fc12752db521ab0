# The two commands of the README: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 7000
PYTEST_ARGS ?=

.PHONY: venv test run bench clean

venv: $(STAMP)

# Reinstall whenever the package metadata (console scripts, dependencies) changes.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e '.[test]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

run: venv
	@echo "tcpserver demo: an echo service on 127.0.0.1:$(PORT), every byte logged by recordio."
	@echo "Try it:  $(BIN)/tcpclient -RHl0 127.0.0.1 $(PORT) sh -c 'echo hello >&7; head -1 <&6'"
	@echo "Stop it with Ctrl-C."
	exec $(BIN)/tcpserver -v -RHl0 127.0.0.1 $(PORT) $(BIN)/recordio cat

# Every benchmark prints our figures beside the C tools' (when installed), measured in the same run.
bench: venv
	@for b in bench/*; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
