"""The CPython internals warm start relies on (ucspi.runtime.cpython): this test fails
loudly, naming what changed, on an interpreter where one of them is gone or different."""

import os
import signal
import subprocess
import sys

from ucspi.runtime import cpython


def test_every_internal_is_there_and_behaves_as_launch_expects():
    assert cpython.check() == []


def test_environ_data_is_the_mapping_os_environ_reads():
    os.environ["CPYTHON_TEST_VARIABLE"] = "a"
    try:
        cpython.environ_data[b"CPYTHON_TEST_VARIABLE"] = b"b"
        assert os.environ["CPYTHON_TEST_VARIABLE"] == "b"
    finally:
        os.environ.pop("CPYTHON_TEST_VARIABLE", None)


def test_raw_signal_functions_take_and_give_plain_ints():
    old = cpython.setsignal(signal.SIGUSR2, int(signal.SIG_IGN))
    try:
        assert cpython.getsignal(signal.SIGUSR2) == int(signal.SIG_IGN)
        assert type(cpython.getsignal(signal.SIGUSR2)) is int
    finally:
        cpython.setsignal(signal.SIGUSR2, old)


def test_clear_atexit_forgets_the_handlers_and_run_atexit_runs_them():
    code = ("import atexit, os\n"
            "from ucspi.runtime import cpython\n"
            "atexit.register(lambda: os.write(1, b'parent'))\n"
            "cpython.clear_atexit()\n"
            "atexit.register(lambda: os.write(1, b'child'))\n"
            "cpython.run_atexit()\n"
            "cpython.clear_atexit()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.stdout == b"child", done.stderr


def test_title_setter_changes_what_ps_shows():
    code = ("from ucspi.runtime import cpython\n"
            "cpython.title_setter()('cpython-shim-title')\n"
            "print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.stdout.strip() == b"cpython-shim-title", done.stderr
