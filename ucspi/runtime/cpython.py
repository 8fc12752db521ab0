"""The CPython internals launch relies on, in one place (tests/test_cpython.py checks each).

Warm start puts a forked interpreter into the state a fresh one would have; a few of the
things that takes are not public:

  environ_data    os.environ's dict of encoded names and values (os.environ._data):
                  read and written directly, as bytes, it spares a warm child the
                  mapping's Python layers (most of its environment work). None where it
                  is not a dict of bytes: launch then uses os.environ itself.
  getsignal, setsignal, sigmask, alarm
                  the C functions of _signal: signal.py's wrappers convert to and from
                  enums (importing enum costs a cold start 12 ms), and each object a warm
                  child touches costs it a copied page.
  clear_atexit, run_atexit
                  atexit._clear and atexit._run_exitfuncs: a warm child runs its own
                  program's handlers at its end, never its parent's.
  title_setter    setproctitle's C function, loaded from its extension module without
                  the package (the package imports logging, whose fork hooks add half a
                  millisecond to every fork after it); setproctitle.setproctitle when the
                  extension cannot be found that way.

Each is looked up when this module is imported; `check()` says what is missing or
behaves differently on this interpreter (the test fails loudly on a Python where one
changed, rather than warm start going subtly wrong).
"""

from __future__ import annotations

import atexit
import os
import _signal
import sys

FS_ENCODING = sys.getfilesystemencoding()

environ_data = getattr(os.environ, "_data", None)
if not (isinstance(environ_data, dict) and os.name == "posix"):
    environ_data = None

getsignal, setsignal, sigmask = _signal.getsignal, _signal.signal, _signal.pthread_sigmask
alarm, SIGALRM, SIGINT, SIG_DFL = _signal.alarm, _signal.SIGALRM, _signal.SIGINT, _signal.SIG_DFL
clear_atexit, run_atexit = atexit._clear, atexit._run_exitfuncs

_setter = None


def title_setter():
    """setproctitle's C function (loaded once; its first call, made here, moves argv and
    environ out of the way to make room for titles, so no warm child pays for it)."""
    global _setter
    if _setter is None:
        try:
            import importlib.machinery
            import importlib.util
            spec = importlib.util.find_spec("setproctitle")
            where = spec.submodule_search_locations[0]
            name = next(n for n in os.listdir(where)
                        if n.startswith("_setproctitle") and n.endswith(".so"))
            loader = importlib.machinery.ExtensionFileLoader("setproctitle._setproctitle",
                                                             os.path.join(where, name))
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_loader(loader.name, loader))
            loader.exec_module(module)
            _setter = module.setproctitle
            module.getproctitle()
        except Exception:
            import setproctitle
            _setter = setproctitle.setproctitle
    return _setter


def check() -> list[str]:
    """What of the above this interpreter lacks or does differently (empty: all well)."""
    problems = []
    if environ_data is None:
        problems.append("os.environ._data is not a dict of bytes")
    else:
        key = b"CPYTHON_SHIM_CHECK"
        os.environ["CPYTHON_SHIM_CHECK"] = "1"
        if environ_data.get(key) != b"1":
            problems.append("os.environ._data does not mirror os.environ")
        os.environ.pop("CPYTHON_SHIM_CHECK")
        if key in environ_data:
            problems.append("os.environ._data keeps a removed variable")
    import signal
    if getsignal(signal.SIGUSR1) != int(signal.getsignal(signal.SIGUSR1)):
        problems.append("_signal.getsignal does not answer as signal.getsignal")
    if not callable(sigmask):
        problems.append("_signal.pthread_sigmask is missing")
    if not (callable(clear_atexit) and callable(run_atexit)):
        problems.append("atexit._clear or atexit._run_exitfuncs is missing")
    try:
        setter = title_setter()
        import setproctitle
        if setter is setproctitle.setproctitle:
            problems.append("setproctitle's extension module was not found by name")
    except Exception as err:
        problems.append(f"setproctitle cannot be loaded: {err!r}")
    return problems
