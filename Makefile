# The two commands of the README: `make run` and `make test`. Both build .venv first.
# The venv's interpreter must be one every user can run (the embedded-mode tests run as an
# ordinary user): Debian's /usr/bin/python3 when it is 3.11+ with venv, else python3 on PATH.
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test test-interpreters test-private-clone run bench clean

venv: $(STAMP)

# Reinstall whenever the package metadata (console scripts, dependencies) changes.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e '.[test]'
	$(BIN)/python -m ucspi.runtime.console_scripts $(BIN)
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The runtime's tests (warm start, fork helper, tcpserver, end to end) again on each
# Python 3.11, 3.12, 3.13 present, each in a copy of the project with a .venv of its own
# (devtools/interpreters.py; PYTHON_VERSIONS="3.12" for fewer). .ci/run runs it. It needs
# no .venv of its own: $(PYTHON) runs the driver, and each copy builds its venv.
PYTHON_VERSIONS ?=
test-interpreters:
	$(PYTHON) -m devtools.interpreters $(PYTHON_VERSIONS)

# make test as a root newcomer runs it: a clone in a 0700 directory, python3 from PATH
# (root's own, often a private pyenv), a slice of the suite (embedded end to end,
# qmail-local, make run) once as started and once with SIGINT/SIGQUIT ignored
# (devtools/private_clone.py). .ci/run runs it as root.
test-private-clone:
	$(PYTHON) -m devtools.private_clone

run: venv
	@echo "make run: qmail as you in ./var under svscan (SMTP on 127.0.0.1:$${SMTP_PORT:-2525}); Ctrl-C stops it."
	exec $(BIN)/python -m devtools.run_demo var

# Every benchmark (bench/*, not the *.py modules they share) prints our figures beside the C tools' (when installed), measured in the same run.
# Bytecode first: a server that compiles stale sources at start (PYTHONDONTWRITEBYTECODE
# set, say) keeps a heap 2 MiB bigger, which every fork it makes pays for.
bench: venv
	@$(BIN)/python -m compileall -q ucspi supervise qmail
	@for b in bench/*; do case $$b in *.py|*/__pycache__) continue;; esac; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
