import pytest

from tests import support


@pytest.fixture(autouse=True)
def _stop_processes():
    """Every process a test started through support.Proc is stopped by PID afterwards."""
    yield
    support.stop_all()
