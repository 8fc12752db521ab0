"""Warm start: run a suite program without a fresh interpreter (DESIGN.md section 4).

qmail's design starts a process per connection, message and delivery; a fresh Python
costs 15-170 ms. Programs that start our programs many times (tcpserver, unixserver,
svscan, qmail-lspawn, the exec chains rblsmtpd/setuidgid/envdir/softlimit ...) call
`exec_program` where the C tools call execvp. When the program resolves to one of this
suite's console scripts (installed for the running interpreter's environment), its module
is imported once and its main(argv) runs in this process, after the process has been put
into the state exec would have left it in:

  * argv, environment (os.environ and the C environ), process title;
  * no descriptor open but 0, 1, 2 and those the caller names as documented extras;
  * signal dispositions and mask as a freshly started Python has them (every signal
    default, SIGINT raising KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored, nothing
    blocked);
  * fresh sys.stdin/stdout/stderr over descriptors 0/1/2, no atexit handlers of the
    caller's;
  * exit status, and death by signal, exactly as a cold process's.

cwd, uid/gid/groups, umask and resource limits are inherited exactly as exec inherits
them. Anything that is not one of our programs (a shell script, a C binary) is exec'd.

`spawn` is fork + exec_program for the parents (tcpserver's per-connection child).
`preload` imports a program's module in the parent so that every child starts warm.

Switch: UCSPI_WARMSTART=0 in the environment turns warm start off (everything is exec'd).
"""

import atexit
import errno
import gc
import importlib
import os
import re
import _signal
import signal
import sys
import time
import traceback
from typing import NoReturn

SWITCH = "UCSPI_WARMSTART"
DEFAULT_PATH = "/bin:/usr/bin"  # pathexec's search path when $PATH is unset
_PACKAGES = ("ucspi.", "supervise.", "qmail.")
_HEAD_BYTES = 1024

# path -> (stat key, module name or None, pinned variables): each script is read once.
_identity_cache: dict[str, tuple[tuple[int, int, int], str | None, dict]] = {}
# A launcher may pin an environment variable before importing main (qmail-install's
# ROOT/bin launchers pin QMAIL_ROOT): os.environ['NAME'] = 'value', both literals.
_PINNED = re.compile(r"""^os\.environ\[('[A-Za-z_][A-Za-z0-9_]*')\] = ('(?:[^'\\]|\\.)*')$""")


def enabled(env=None) -> bool:
    """Whether warm start is on for a program started with this environment."""
    env = os.environ if env is None else env
    return env.get(SWITCH, "1") not in ("0", "no", "off", "false")


def find_program(name: str, env=None) -> str | None:
    """The file execvp would run for name under env's PATH (None: not found)."""
    if "/" in name:
        return name
    env = os.environ if env is None else env
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def locate(name: str, env=None) -> str:
    """find_program, or the OSError pathexec reports: access denied when a file of that
    name exists along PATH but cannot be run, file does not exist when none does."""
    found = find_program(name, env)
    if found is not None:
        return found
    env = os.environ if env is None else env
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        if os.path.exists(os.path.join(directory or ".", name)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def identify(path: str) -> str | None:
    """The module name if path is one of this suite's console scripts, else None.

    A console script qualifies when its #! line names an interpreter in the same
    directory as ours (the same virtualenv, so the same code) and it imports main from a
    module of our packages. Lines pinning a variable before that import are remembered
    (see pinned()).
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _identity_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    module = None
    pinned = {}
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        head = b""
    if head.startswith(b"#!"):
        lines = head.decode("utf-8", "replace").splitlines()
        interpreter = lines[0][2:].strip().split(" ")[0]
        ours = os.path.dirname(os.path.abspath(sys.executable))
        if os.path.dirname(os.path.abspath(interpreter)) == ours:
            for line in lines[1:]:
                match = _PINNED.match(line)
                if match:
                    import ast  # only launchers need it; chain tools start faster without
                    pinned[ast.literal_eval(match.group(1))] = ast.literal_eval(match.group(2))
                    continue
                words = line.split()
                if (len(words) == 4 and words[0] == "from" and words[2] == "import"
                        and words[3] == "main" and words[1].startswith(_PACKAGES)):
                    module = words[1]
                    break
    _identity_cache[path] = (key, module, pinned)
    return module


def pinned(path: str) -> dict:
    """The variables a suite launcher at path pins (os.environ['NAME'] = 'value' lines
    before its import of main); {} for anything else."""
    if identify(path) is None:
        return {}
    return dict(_identity_cache[path][2])


def resolve(argv0: str, env=None) -> str | None:
    """The module to warm-start for argv0 under env, or None to exec it."""
    if not enabled(env):
        return None
    path = find_program(argv0, env)
    return identify(path) if path else None


def preload(argv0: str, env=None) -> str | None:
    """Import argv0's module now, in the parent, so children run it warm.

    Also freezes the garbage collector's view of what is loaded, so forked children do
    not copy the parent's pages just to scan them.
    """
    module = resolve(argv0, env)
    if module:
        importlib.import_module(module)
        _title_setter()  # each warm child sets its title
    gc.freeze()
    return module


def exec_program(argv: list[str], env=None, keep_fds: tuple[int, ...] = (),
                 program: str | None = None) -> NoReturn:
    """Replace this process by argv, as execvp does; ours run in this process.

    program is the file to run when it differs from argv[0] (argv0's case).
    Raises OSError when it cannot be run (the caller reports it as the C tool would).
    """
    env = environ() if env is None else dict(env)
    program = argv[0] if program is None else program
    module = resolve(program, env)
    if module:
        env.update(pinned(find_program(program, env)))
    # A name containing = cannot be put into a running interpreter's environment.
    if module and not any(not key or "=" in key for key in env):
        _run_in_process(module, argv, env, keep_fds)
    exec_external(argv, env, program)


def exec_external(argv: list[str], env, program: str | None = None) -> NoReturn:
    """execve with the signal state a C parent would pass on (Python ignores SIGPIPE)."""
    program = argv[0] if program is None else program
    _reset_signals(python_defaults=False)
    os.execve(locate(program, env), argv, env)


def spawn(argv: list[str], env=None, fds: dict[int, int] | None = None,
          keep_fds: tuple[int, ...] = (), unrunnable: int = 111, say_why: bool = True) -> int:
    """fork, then in the child: dup2 each fds[target] = source, and exec_program(argv).

    Returns the child's pid. A child that cannot run argv exits `unrunnable` (111, as
    the C tools' children do; qmail.c's child exits 120 without a word: say_why=False).
    """
    _flush_std()
    pid = os.fork()
    if pid:
        return pid
    try:
        for target, source in (fds or {}).items():
            if target != source:
                os.dup2(source, target)
            else:
                os.set_inheritable(target, True)
        exec_program(argv, env, keep_fds)
    except OSError as err:
        if say_why:
            from ucspi import exitcodes
            exitcodes.say(f"{os.path.basename(sys.argv[0])}: fatal: unable to run {argv[0]}: "
                          f"{exitcodes.error_str(err)}")
    except BaseException:
        traceback.print_exc()
    os._exit(unrunnable)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _inherited_ignored() -> frozenset:
    """Signals this process found ignored when it started (exec keeps them ignored)."""
    found = set()
    for sig in map(int, signal.valid_signals()):
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                found.add(sig)
        except (OSError, ValueError):
            pass
    # Python ignores these two itself at start-up; that is not inheritance.
    return frozenset(found - {signal.SIGPIPE, signal.SIGXFSZ})


_INHERITED_IGNORED = _inherited_ignored()


def _locale_coerced() -> bool:
    """Whether the interpreter itself put LC_CTYPE into os.environ (PEP 538 coercion of
    the C locale): the variable is there but was not in the environment exec gave us."""
    if "LC_CTYPE" not in os.environ:
        return False
    try:
        with open("/proc/self/environ", "rb") as f:
            original = f.read().split(b"\0")
    except OSError:
        return False
    return not any(item.startswith(b"LC_CTYPE=") for item in original)


_LOCALE_COERCED = _locale_coerced()


def environ() -> dict:
    """A copy of os.environ as this process received it: without the LC_CTYPE that
    Python's locale coercion added, which a C program would never pass on."""
    env = dict(os.environ)
    if _LOCALE_COERCED:
        env.pop("LC_CTYPE", None)
    return env


_CATCHABLE = tuple(int(sig) for sig in signal.valid_signals()
                   if sig not in (signal.SIGKILL, signal.SIGSTOP))


def is_open(fd: int) -> bool:
    """Whether descriptor fd is open in this process."""
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# The C-level functions (no enum conversions): a warm child touches fewer of the
# parent's objects, so fewer shared pages become private copies.
_getsignal, _setsignal = _signal.getsignal, _signal.signal
_DFL, _IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)


def _reset_signals(python_defaults: bool) -> None:
    """Dispositions as exec leaves them: caught signals default, ignored ones ignored,
    nothing blocked. python_defaults adds what a starting interpreter sets up; without
    it (we are about to exec) only what exec would keep needs undoing."""
    if python_defaults:
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError):
            pass
    for sig in _CATCHABLE:
        try:
            current = _getsignal(sig)
            if python_defaults:
                want = _IGN if sig in _INHERITED_IGNORED else _DFL
                if current != want:
                    _setsignal(sig, want)
            elif current == _IGN and sig not in _INHERITED_IGNORED:
                # exec resets caught signals itself, but keeps ignored ones
                _setsignal(sig, _DFL)
        except (OSError, ValueError, RuntimeError, TypeError):
            pass
    if python_defaults:
        if signal.SIGINT not in _INHERITED_IGNORED:
            _setsignal(signal.SIGINT, signal.default_int_handler)
        _setsignal(signal.SIGPIPE, _IGN)
        _setsignal(signal.SIGXFSZ, _IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _close_other_fds(keep: set[int]) -> None:
    """Close every descriptor but keep: nothing of the parent's leaks into the child."""
    try:
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _fresh_stdio() -> None:
    """sys.stdin/stdout/stderr as a new interpreter would make them over fds 0, 1, 2."""
    def stream(fd, mode, **kw):
        try:
            os.fstat(fd)
        except OSError:
            return None
        return open(fd, mode, closefd=False, **kw)

    sys.stdin = sys.__stdin__ = stream(0, "r")
    sys.stdout = sys.__stdout__ = stream(1, "w", buffering=1 if is_open(1) and os.isatty(1) else -1)
    sys.stderr = sys.__stderr__ = stream(2, "w", buffering=1, errors="backslashreplace")


_setter = None


def _title_setter():
    """setproctitle's C function, loaded without its package: the package imports
    logging, whose fork hooks would add half a millisecond to every fork after it."""
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
        except Exception:
            import setproctitle
            _setter = setproctitle.setproctitle
    return _setter


def set_title(title: str) -> None:
    """Set this process's title as ps shows it (setproctitle; loaded on first use)."""
    try:
        _title_setter()(title)
    except Exception:
        pass


def _set_environment(env) -> None:
    """os.environ (and the C environ) become env, in env's order, as exec lays it out.

    When env only changes values, drops variables or appends new ones, the changes are
    applied one by one (the usual case: a warm child's environment is its parent's or
    close to it); any other order means clearing and refilling, which costs a warm child
    ~300 KiB of private memory."""
    global _LOCALE_COERCED
    _LOCALE_COERCED = False  # from here on the environment is exactly the one given
    old_tz = os.environ.get("TZ")
    kept = [key for key in os.environ if key in env]
    added = [key for key in env if key not in os.environ]
    if list(env) == kept + added:
        for key in [key for key in os.environ if key not in env]:
            del os.environ[key]
        for key in kept:
            if os.environ[key] != env[key]:
                os.environ[key] = env[key]
        for key in added:
            os.environ[key] = env[key]
    else:
        os.environ.clear()
        os.environ.update(env)
    if env.get("TZ") != old_tz:
        time.tzset()


def _run_in_process(module_name: str, argv: list[str], env, keep_fds) -> NoReturn:
    """Become argv's program in this process; never returns."""
    module = importlib.import_module(module_name)
    _flush_std()
    _reset_signals(python_defaults=True)
    _close_other_fds({0, 1, 2, *keep_fds})
    _fresh_stdio()
    set_title(" ".join(argv))
    _set_environment(env)
    sys.argv = list(argv)
    atexit._clear()
    os._exit(_call_main(module.main, list(argv)))


def _call_main(main, argv) -> int:
    """Run main(argv) and turn its outcome into an exit status as the interpreter does."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except KeyboardInterrupt:
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        try:
            sys.stderr.write(f"{code}\n")
        except (OSError, ValueError, AttributeError):
            pass
        code = 1
    return _finish(code)


def _finish(code: int = 0) -> int:
    """atexit handlers of the program, then stdio flushed; a failed flush is exit 120."""
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and code == 0:
                code = 120
    return code & 0xFF
