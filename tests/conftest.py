import os
import signal
import subprocess
import sys

import pytest

from devtools import ordinary_user
from devtools.harness import ROOT
from tests import support

RELOCATED = "DJB_SUITE_TESTS_RELOCATED"


def pytest_configure(config):
    """As root, in a checkout the ordinary user cannot run (a 0700 directory such as /root,
    a venv of a private interpreter), the embedded-mode tests could not drop to that user:
    the whole run moves, once, into a world-readable copy of the project with a venv of an
    interpreter that user can run (devtools.ordinary_user.project_copy), and its result is
    this run's."""
    if os.geteuid() != 0 or os.environ.get(RELOCATED) or ordinary_user.checkout_usable():
        return
    try:
        copy = ordinary_user.project_copy()
    except ordinary_user.NoUserPython as trouble:
        pytest.exit(f"tests: {trouble}", returncode=2)
    print(f"tests: {ordinary_user.unprivileged_user().pw_name}, the ordinary user the "
          f"embedded-mode tests run as, cannot run {ROOT}/.venv: running the suite in a "
          f"world-readable copy, {copy}, with a venv of {ordinary_user.user_python()}",
          flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env[RELOCATED] = "1"
    try:
        done = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-m", "pytest",
                               *config.invocation_params.args], cwd=copy, env=env)
    finally:
        ordinary_user.remove_copies()
    sys.stdout.flush()
    os._exit(done.returncode)


def pytest_report_header(config):
    """Said, not undone: signals this run inherited ignored reach every program it starts
    ignored (exec keeps them so), and the tests expect exactly that."""
    ignored = support.inherited_ignored_signals()
    names = [signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
             for sig in range(1, 65) if ignored & (1 << (sig - 1))]
    return f"signals inherited ignored: {' '.join(names) or 'none'}"


@pytest.fixture(autouse=True)
def _stop_processes():
    """Every process a test started through support.Proc is stopped by PID afterwards."""
    yield
    support.stop_all()
