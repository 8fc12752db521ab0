import signal

import pytest

from tests import support


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
