"""launch: how every program of the suite starts another, the one owner of that.

What it owns, and who calls it:
  exec_program  replace this process by a program, as execvp does: one of our console
                scripts runs warm (its module's main called in this process, put into the
                state exec would leave), anything else is exec'd (exec_external). The exec
                chain tools (setuidgid, envdir, softlimit, rblsmtpd, argv0, tcp-env ...)
                end in it.
  spawn         fork + exec_program, with the child's descriptors, directory and ids
                (privileges.become) set up before: supervise, svscan, svscanboot,
                qmail-start, qmail-smtpd -> qmail-queue, the delivery helpers.
  plan_start, start_external, run_planned
                a server's connection child (tcpserver): how it starts is worked out in
                the server; an external program is posix_spawn'ed without forking the
                interpreter, ours runs in a child of the fork helper (fork_helper.py,
                which tcpserver, unixserver, qmail-lspawn and qmail-rspawn fork through).
  preload       import a program's module once in the parent, before privileges drop;
                preload_chain also every program of ours named later in its argv.
  resolve, identify, find_program, locate: the warm-or-exec decision.
The privilege change itself is privileges.py's; the CPython internals used here are
cpython.py's.

Why warm start (qmail's design starts a process per connection, message and delivery,
and a fresh Python costs 15-170 ms): a program that resolves to one of this suite's
console scripts (installed for the running interpreter's environment) is imported once
and its main(argv) runs after the process has been put into the state exec would leave:

  * argv, environment (os.environ and the C environ), process title;
  * no descriptor open but 0, 1, 2 and those the caller names as documented extras;
  * signal dispositions and mask as a freshly started Python has them (caught signals
    default, signals this process was started with ignored still ignored, as exec keeps
    them, SIGINT raising KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored, nothing blocked);
  * fresh sys.stdin/stdout/stderr over descriptors 0/1/2, no atexit handlers of the
    caller's;
  * exit status, and death by signal, exactly as a cold process's.
cwd, uid/gid/groups, umask and resource limits are inherited exactly as exec inherits them.

Page-level tuning (the one place it lives): a forked Python child pays a copy-on-write
fault for every page it writes while the parent still shares it, and a reference count
change is a write. So each function a warm child runs costs it about two pages (function
and code object) and each module attribute it reads (`os.dup2`) up to three (the name, the
module type's lookup cache, the value). Hence, here: the hot functions bound as module
globals (`_dup2`, `_getsignal`...); the environment changed as bytes in os.environ's own
dict (cpython.environ_data) with the changes worked out in the server (plan_start);
run_planned doing a warm child's whole set-up in one frame; what a fork helper does once
for all its children (prepare_signals, prepare_socket_stdio) left out of each child;
typing, re and traceback imported only where needed, so a forking parent stays small
(fork and exit cost grow with every page it holds); preload freezing the GC's view of
what is loaded. `bench/tcpserver` (b) shows their loss.

Switch: UCSPI_WARMSTART=0 in the environment turns warm start off (everything is exec'd).
"""

from __future__ import annotations

import errno
import gc
import importlib
import io
import os
import signal
import sys
import time
from stat import S_ISREG as _S_ISREG  # os imports stat: no extra module

from ucspi.runtime import cpython

# re, traceback and typing are imported only when needed: a parent that forks warm
# children keeps its heap small (fork and exit cost grows with every page it holds).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

SWITCH = "UCSPI_WARMSTART"
DEFAULT_PATH = "/bin:/usr/bin"  # pathexec's search path when $PATH is unset
SUITE_PACKAGES = ("ucspi.", "supervise.", "qmail.")  # a console script of ours imports main from one
_HEAD_BYTES = 1024

# path -> (stat key, module name or None, pinned variables): each script is read once.
_identity_cache: dict[str, tuple[tuple[int, int, int], str | None, dict]] = {}
# A launcher may pin an environment variable before importing main (qmail-install's
# ROOT/bin launchers pin QMAIL_ROOT): os.environ['NAME'] = 'value', both literals.
_PINNED = r"""^os\.environ\[('[A-Za-z_][A-Za-z0-9_]*')\] = ('(?:[^'\\]|\\.)*')$"""


def enabled(env=None) -> bool:
    """Whether warm start is on for a program started with this environment."""
    value = _getenv(SWITCH, "1") if env is None else env.get(SWITCH, "1")
    return value not in ("0", "no", "off", "false")


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
                match = line.startswith("os.environ[") and _pinned_match(line)
                if match:
                    import ast  # only launchers need it; chain tools start faster without
                    pinned[ast.literal_eval(match.group(1))] = ast.literal_eval(match.group(2))
                    continue
                words = line.split()
                if (len(words) == 4 and words[0] == "from" and words[2] == "import"
                        and words[3] == "main" and words[1].startswith(SUITE_PACKAGES)):
                    module = words[1]
                    break
    _identity_cache[path] = (key, module, pinned)
    return module


def _pinned_match(line: str):
    import re  # only launchers that pin variables need it
    return re.match(_PINNED, line)


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


def preload_chain(argv: list[str], env=None) -> str | None:
    """preload(argv[0]), and import the module of every later word of argv that names a
    program of ours: in a chain such as `qmail-popup HOST checkpassword qmail-pop3d
    Maildir` each link then starts warm, its imports paid once in the server, not in
    every connection's child. Returns argv[0]'s module, as preload."""
    module = preload(argv[0], env)
    for word in argv[1:]:
        if word and not word.startswith("-") and "=" not in word:
            other = resolve(word, env)
            if other:
                importlib.import_module(other)
    gc.freeze()
    return module


UNRESOLVED = object()  # exec_program's resolved: not worked out beforehand


AS_EXEC = None  # exec_program's keep_fds: every descriptor an exec would pass on


def exec_program(argv: list[str], env=None, keep_fds: tuple[int, ...] | None = AS_EXEC,
                 program: str | None = None, changes: dict | None = None,
                 resolved=UNRESOLVED) -> NoReturn:
    """Replace this process by argv, as execvp does; ours run in this process.

    keep_fds: the descriptors above 2 the program gets. AS_EXEC (the default, for the
    chain tools: softlimit, setuidgid, checkpassword...) keeps what exec would, every one
    not marked close-on-exec, so `softlimit checkpassword ...` still hands descriptor 3
    on; a tuple keeps those only (a server's child, spawn: nothing else may leak).

    The environment is env, or (env None) this process's environment with changes, a
    dict of variables to set (str) or remove (None), applied in place as C's env_put
    does: a variable set keeps its place, a new one goes last. Giving changes rather
    than a whole env spares a warm start copying and comparing the environment.
    program is the file to run when it differs from argv[0] (argv0's case). With
    changes, resolved may give what resolve_changed() said of program in a parent.
    Raises OSError when it cannot be run (the caller reports it as the C tool would).
    """
    program = argv[0] if program is None else program
    if env is not None:
        env = dict(env)
        path = find_program(program, env) if enabled(env) else None
        module = identify(path) if path else None
        if module:
            env.update(_identity_cache[path][2])  # what pinned(path) returns
        # A name containing = cannot be put into a running interpreter's environment.
        if module and not any(not key or "=" in key for key in env):
            _run_in_process(module, argv, env, keep_fds)
        exec_external(argv, env, program)
    changes = dict(changes or {})
    if _LOCALE_COERCED and "LC_CTYPE" not in changes:
        changes["LC_CTYPE"] = None
    if resolved is UNRESOLVED:
        resolved = resolve_changed(program, changes)
    if resolved:
        module, pinned_variables = resolved
        changes.update(pinned_variables)
        _run_in_process(module, argv, None, keep_fds, changes)
    env = environ()
    _apply(env, changes)
    exec_external(argv, env, program)


def resolve_changed(program: str, changes: dict) -> tuple[str, dict] | None:
    """(module, variables its launcher pins) when program, started with this process's
    environment and changes, is one of ours to warm-start; None when it is to be exec'd:
    not ours, or an environment a running interpreter cannot take (a name that is empty
    or holds =, which only exec passes on)."""
    view = ChangedEnviron(changes)
    path = find_program(program, view) if enabled(view) else None
    module = identify(path) if path else None
    if not module:
        return None
    pinned_variables = dict(_identity_cache[path][2])
    names = (*changes, *pinned_variables)
    if any(not name or "=" in name for name in names) or _getenv("") is not None:
        return None
    return module, pinned_variables


class ChangedEnviron:
    """The look-ups exec_program makes (PATH, the switch) in os.environ with changes."""

    def __init__(self, changes: dict):
        self.changes = changes

    def get(self, key: str, default=None):
        if key in self.changes:
            value = self.changes[key]
            return default if value is None else value
        return _getenv(key, default)


def _apply(env: dict, changes: dict) -> None:
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value


def exec_external(argv: list[str], env, program: str | None = None) -> NoReturn:
    """execve with the signal state a C parent would pass on (Python ignores SIGPIPE)."""
    program = argv[0] if program is None else program
    path = locate(program, env)
    # execve's refusals of a missing or unrunnable file are found before the signal mask
    # is emptied: a signal held back until the program starts (softlimit's SIGXCPU,
    # already pending) must not come before the caller's report, as it cannot in C's.
    _check_runnable(path)
    blocked = _reset_signals(python_defaults=False)
    try:
        os.execve(path, argv, env)
    except OSError:
        # the caller says why and exits: a signal it held back (softlimit's SIGXCPU)
        # must not come first
        _sigmask(signal.SIG_SETMASK, blocked)
        raise


def _check_runnable(path: str) -> None:
    """Raise the OSError execve would for path when it is missing or no executable file
    (ENOENT, ENOTDIR, ELOOP... as stat says; EACCES for a directory or no x bit)."""
    st = os.stat(path)
    if not _S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


ERROR_TEMP = -1  # spawn's code: 111 when the reason is temporary (error_temp), else 100
_SAY = "unable to run"  # spawn's default complaint: PROG: fatal: unable to run ARGV0: reason


def spawn(argv: list[str], env=None, fds: dict[int, int] | None = None,
          keep_fds: tuple[int, ...] = (), cwd: str | None = None, ids: tuple | None = None,
          complaint=_SAY, code: int = 111) -> int:
    """fork, and in the child: descriptors as fds says (target: source, in any order;
    each target stays open), cwd, ids ((uid, gid, groups) for privileges.become), then
    exec_program(argv, env, keep_fds). The suite's one fork + exec.

    Returns the child's pid; raises OSError when fork fails. A child that cannot get that
    far writes complaint on descriptor 2 and exits code (ERROR_TEMP: 111 or 100 as the
    reason is temporary or not; 111 by default, as the C tools' children). complaint is
    a line whose "{reason}" is filled in, or a dict of such lines by step ("fds", "cwd",
    "ids", "run"; a step missing says nothing), or None for silence; by default
    `PROG: fatal: unable to run ARGV0: reason`.
    """
    flush_std()
    pid = os.fork()
    if pid:
        return pid
    step = "fds"
    try:
        if fds:
            arrange(fds)
            keep_fds = (*keep_fds, *(target for target in fds if target > 2))
        step = "cwd"
        if cwd is not None:
            os.chdir(cwd)
        step = "ids"
        if ids is not None:
            from ucspi.runtime import privileges
            privileges.become(*ids)
        step = "run"
        exec_program(argv, env, keep_fds)
    except OSError as err:
        from ucspi.runtime import exitcodes
        if complaint is _SAY:
            complaint = (f"{os.path.basename(sys.argv[0])}: fatal: unable to run {argv[0]}: "
                         "{reason}")
        if isinstance(complaint, dict):
            complaint = complaint.get(step)
        if complaint:
            exitcodes.say(complaint.replace("{reason}", exitcodes.error_str(err)))
        if code == ERROR_TEMP:
            code = 111 if exitcodes.error_temp(err.errno or 0) else 100
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 111 if code == ERROR_TEMP else code
    os._exit(code)


def arrange(fds: dict[int, int]) -> None:
    """Each target descriptor a copy of its source (inheritable), whatever the overlaps:
    when a source is also another's target, every source is first copied out of the way."""
    if any(source in fds and fds[source] != source for source in fds.values()):
        import fcntl
        high = max(*fds, *fds.values()) + 1
        moved = {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, high)
                 for target, source in fds.items()}
        for target, source in moved.items():
            os.dup2(source, target)
        for source in moved.values():
            os.close(source)
        return
    for target, source in fds.items():
        if target != source:
            os.dup2(source, target)
        else:
            os.set_inheritable(target, True)


def fork() -> int:
    """os.fork with this process's standard streams flushed first (a child must not
    write what the parent had buffered). Raises OSError."""
    flush_std()
    return os.fork()


def flush_std() -> None:
    """Flush sys.stdout and sys.stderr, as a process about to fork or exec must."""
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


# os.environ keeps the encoded environment in _data; reading and writing it directly
# skips the mapping's Python-level layers (a missing key costs it an exception), which
# is most of a warm child's environment work. Any other os.environ: the mapping itself.
_FS_ENCODING = cpython.FS_ENCODING
_ENV_DATA = cpython.environ_data


def _environ_now() -> dict:
    if _ENV_DATA is None:
        return dict(os.environ)
    enc = _FS_ENCODING
    return {key.decode(enc, "surrogateescape"): value.decode(enc, "surrogateescape")
            for key, value in _ENV_DATA.items()}


def _getenv(key: str, default=None):
    """os.environ.get(key, default) without the mapping's exception for a missing key."""
    if _ENV_DATA is None:
        return os.environ.get(key, default)
    value = _ENV_DATA.get(key.encode(_FS_ENCODING, "surrogateescape"))
    return default if value is None else value.decode(_FS_ENCODING, "surrogateescape")


def environ_bytes(changes: dict) -> dict:
    """environ() with changes applied (str values set, None removed), as bytes: what
    os.posix_spawn takes without encoding every variable again."""
    if _ENV_DATA is None:
        env = environ()
        _apply(env, changes)
        return env
    env = dict(_ENV_DATA)
    if _LOCALE_COERCED:
        env.pop(b"LC_CTYPE", None)
    _apply(env, _encoded(changes))
    return env


def environ() -> dict:
    """A copy of os.environ as this process received it: without the LC_CTYPE that
    Python's locale coercion added, which a C program would never pass on."""
    env = _environ_now()
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
_getsignal, _setsignal, _sigmask = cpython.getsignal, cpython.setsignal, cpython.sigmask
_DFL, _IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)


def _reset_signals(python_defaults: bool) -> set:
    """Dispositions as exec leaves them: caught signals default, ignored ones ignored,
    nothing blocked. python_defaults adds what a starting interpreter sets up; without
    it (we are about to exec) only what exec would keep needs undoing. Returns the
    signals that were blocked."""
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
    return _sigmask(signal.SIG_SETMASK, ())


# In a fork helper (and its children, until their first warm start): its descriptor
# limit, its dispositions being a fresh interpreter's with nothing blocked but for what
# it undoes in each child itself (its SIGCHLD handler and wake-up fd). None elsewhere.
# A child's warm start skips what the helper did once: each object it touches costs it a
# copy-on-write page.
_helper_fd_limit: int | None = None


def prepare_signals() -> None:
    """For a fork helper: set the dispositions a fresh interpreter has, once, for all its
    children; it must fork them with SIGCHLD at its default (it catches SIGCHLD, and exec
    gives a caught signal's default) and no wake-up fd."""
    global _helper_fd_limit
    _reset_signals(python_defaults=True)
    _helper_fd_limit = _fd_limit()


def inheritable_fds() -> tuple[int, ...]:
    """The descriptors above 2 an exec would pass on: those without close-on-exec."""
    try:
        candidates = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        candidates = range(3, _fd_limit())
    found = []
    for fd in candidates:
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                continue  # the listing's own descriptor, closed by now
    return tuple(found)


def _close_other_fds(keep_fds: tuple[int, ...], limit: int) -> None:
    """Close every descriptor below limit but 0, 1, 2 and keep_fds: nothing of the
    parent's leaks into the child.

    os.closerange is one close_range(2) call per gap between kept descriptors (a
    directory listing of /proc/self/fd costs ten times as much). The usual case, no
    extra descriptor, is one call: a warm child pays a page for each object it touches."""
    if not keep_fds:
        os.closerange(3, limit)
        return
    low = 3
    for fd in sorted(set(keep_fds)):
        if fd > low:
            os.closerange(low, fd)
        low = max(low, fd + 1)
    if limit > low:
        os.closerange(low, limit)


_SC_OPEN_MAX = os.sysconf_names.get("SC_OPEN_MAX")


def _fd_limit() -> int:
    """One past the highest descriptor number this process can hold (asked each time:
    softlimit may have changed it in this process)."""
    try:
        return max(os.sysconf(_SC_OPEN_MAX), 1024)
    except (OSError, ValueError, TypeError):
        return 65536


def _fresh_stdio(env, changes: dict | None = None) -> None:
    """sys.stdin/stdout/stderr as a new interpreter started with env (None: this
    process's environment with changes) would make them over fds 0, 1, 2."""
    global _ready_stdio
    ready, _ready_stdio = _ready_stdio, False
    # A socket fork helper's child, its fds 0 and 1 the connection's socket and its fd 2
    # the helper's, as the helper was promised: the streams in place were made for it,
    # unless PYTHONUNBUFFERED changes.
    if ready and env is None and not (changes and "PYTHONUNBUFFERED" in changes):
        return
    _install_stdio(_new_stdio(_unbuffered(env)))


def _install_stdio(streams: tuple) -> None:
    """streams become sys.stdin/stdout/stderr (and sys.__std*__)."""
    # The streams replaced stay referenced: freeing them would finalize (flush, close)
    # each of their three layers, a tenth of a warm child's time.
    _retired.append((sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__))
    sys.stdin = sys.__stdin__ = streams[0]
    sys.stdout = sys.__stdout__ = streams[1]
    sys.stderr = sys.__stderr__ = streams[2]


_retired: list[tuple] = []


def _startup_stdio() -> tuple[str, str]:
    """(encoding, errors) of this interpreter's own standard streams, which its start-up
    derived from the locale and PYTHONIOENCODING (a cold child inherits both)."""
    for stream in (sys.__stdin__, sys.__stdout__):
        if stream is not None:
            return stream.encoding, stream.errors
    import codecs
    import locale
    return codecs.lookup(locale.getpreferredencoding(False)).name, "strict"


_STDIO_ENCODING, _STDIO_ERRORS = _startup_stdio()


def _unbuffered(env) -> bool:
    """Whether a new interpreter with env (None: this process's) would leave stdout and
    stderr unbuffered (our scripts' #! lines carry no -u)."""
    value = _getenv("PYTHONUNBUFFERED") if env is None else env.get("PYTHONUNBUFFERED")
    return bool(value) and not sys.flags.ignore_environment


def _new_stdio(unbuffered: bool) -> tuple:
    """The streams as CPython's create_stdio makes them: stdin always buffered, newline
    "\\n" (no translation), line buffering on a tty (and always for stderr), stdout
    and stderr write-through and without a buffer when unbuffered."""
    def stream(fd, write: bool, errors: str):
        try:
            os.fstat(fd)
        except OSError:
            return None
        raw_only = write and unbuffered
        binary = open(fd, "wb" if write else "rb", buffering=0 if raw_only else -1, closefd=False)
        raw = binary if raw_only else binary.raw
        raw.name = ("<stdin>", "<stdout>", "<stderr>")[fd]
        line_buffering = not unbuffered and (raw.isatty() or fd == 2)
        text = io.TextIOWrapper(binary, _STDIO_ENCODING, errors, "\n", line_buffering, unbuffered)
        text.mode = "w" if write else "r"
        return text

    return (stream(0, False, _STDIO_ERRORS), stream(1, True, _STDIO_ERRORS),
            stream(2, True, "backslashreplace"))


# In a server's fork helper, whose children's descriptors 0 and 1 will be their
# connection's socket (and 2 its own): the sys.std* streams in place were made in
# advance for its children (its own use of them is only to warn on descriptor 2).
_ready_stdio = False


def prepare_socket_stdio() -> None:
    """For a fork helper whose children get a socket as fds 0 and 1: make their
    sys.stdin/stdout/stderr now, once (over a stand-in socket on fds 0 and 1), and put
    them in place, so each warm child finds them there. Its children must warm-start
    with their connection as fds 0 and 1 and the helper's fd 2 (as server_loop's do);
    one whose PYTHONUNBUFFERED is changed makes its own."""
    global _ready_stdio
    import socket
    stand_in, other = socket.socketpair()
    for fd in (0, 1):
        os.dup2(stand_in.fileno(), fd)
    stand_in.close()
    other.close()
    _install_stdio(_new_stdio(_unbuffered(None)))
    _ready_stdio = True


_title = None  # setproctitle's C function once loaded (cpython.title_setter)


def _title_setter():
    global _title
    if _title is None:
        _title = cpython.title_setter()
    return _title


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
    current = _environ_now()
    kept = [key for key in current if key in env]
    added = [key for key in env if key not in current]
    if list(env) == kept + added:
        changes = {key: None for key in current if key not in env}
        changes.update((key, env[key]) for key in kept + added if current.get(key) != env[key])
        _change_environment(changes)  # tzset when TZ is among them
        return
    os.environ.clear()
    os.environ.update(env)
    if env.get("TZ") != current.get("TZ"):
        time.tzset()


def _change_environment(changes: dict) -> None:
    """os.environ (and the C environ) with changes applied in place."""
    global _LOCALE_COERCED
    _LOCALE_COERCED = False
    if _ENV_DATA is None:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            elif os.environ.get(key) != value:
                os.environ[key] = value
    else:
        _change_raw_environment(_encoded(changes))
    if "TZ" in changes:
        time.tzset()


def _encoded(changes: dict) -> dict:
    """changes (names to values, None to remove) as the bytes os.environ keeps."""
    enc = _FS_ENCODING
    return {key.encode(enc, "surrogateescape"):
            None if value is None else value.encode(enc, "surrogateescape")
            for key, value in changes.items()}


def _change_raw_environment(raw_changes: dict) -> None:
    """The C environ and os.environ's bytes (_ENV_DATA) with raw_changes (from
    _encoded) applied in place; a value already there is left alone."""
    data = _ENV_DATA
    for raw_key, raw_value in raw_changes.items():
        if raw_value is None:
            if raw_key in data:
                _unsetenv(raw_key)
                del data[raw_key]
        elif data.get(raw_key) != raw_value:
            _putenv(raw_key, raw_value)
            data[raw_key] = raw_value


def _run_in_process(module_name: str, argv: list[str], env, keep_fds,
                    changes: dict | None = None) -> NoReturn:
    """Become argv's program in this process (its environment env, or this one with
    changes); never returns."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    flush_std()
    global _helper_fd_limit
    limit, _helper_fd_limit = _helper_fd_limit, None
    if limit is None:
        _reset_signals(python_defaults=True)
        limit = _fd_limit()
    _close_other_fds(inheritable_fds() if keep_fds is AS_EXEC else keep_fds, limit)
    if env is None:
        _change_environment(changes)
        _fresh_stdio(None, changes)
    else:
        _fresh_stdio(env)
    set_title(" ".join(argv))
    if env is not None:
        _set_environment(env)
    sys.argv = list(argv)
    _clear_atexit()
    os._exit(_call_main(module.main, list(argv)))


# How a server's connection child starts, decided by plan_start in the server, per
# connection, and carried to the child (marshal-able): (kind, what, changes).
WARM = 0      # (WARM, module, changes as bytes): ours, forked by the fork helper: the short path
EXTERNAL = 1  # (EXTERNAL, path, environment as bytes): not ours: start_external, no fork of us
GENERAL = 2   # (GENERAL, None, changes): the child takes exec_program's general path (and
              # reports a program that cannot run, as a C server's child does)


class DescriptorTrouble(OSError):
    """run_planned could not make the connection descriptors 0 and 1."""


def plan_start(argv0: str, changes: dict) -> tuple:
    """In a server whose connection children its fork helper forks (prepare_signals and
    prepare_socket_stdio done there): how argv0 starts with this process's environment
    and changes, worked out here once rather than in each child."""
    view = ChangedEnviron(changes)
    path = find_program(argv0, view)
    if path is None:
        return GENERAL, None, changes  # the child says it is not there, as C's does
    module = identify(path) if enabled(view) else None
    if module:
        raw = {**changes, **_identity_cache[path][2]}  # with what its launcher pins
        if (_ENV_DATA is None or "PYTHONUNBUFFERED" in raw  # its streams made afresh
                or any(not name or "=" in name for name in raw) or _getenv("") is not None):
            return GENERAL, None, changes
        if _LOCALE_COERCED and "LC_CTYPE" not in raw:
            raw["LC_CTYPE"] = None
        return WARM, module, _encoded(raw)
    return EXTERNAL, path, environ_bytes(changes)


def start_external(plan: tuple, argv: list[str], fd: int) -> int:
    """posix_spawn an EXTERNAL plan's program with fd as descriptors 0 and 1, the signal
    state exec gives; its pid. Raises OSError."""
    _, path, env = plan
    return os.posix_spawn(path, argv, env,
                          file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, fd, 1)],
                          setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), setsigmask=())


# What run_planned and the fork helper's children call, as globals (see the top).
_dup2, _close, _closerange, _putenv, _unsetenv, _exit = (
    os.dup2, os.close, os.closerange, os.putenv, os.unsetenv, os._exit)
_modules = sys.modules
_clear_atexit, _run_exitfuncs = cpython.clear_atexit, cpython.run_atexit


def run_planned(argv: list[str], fd: int, plan: tuple) -> NoReturn:
    """exec_program(argv) in a server's connection child as plan_start planned it, the
    connection's descriptor fd becoming descriptors 0 and 1. Raises DescriptorTrouble
    when fd cannot become 0 and 1, OSError when the program cannot be run.

    A WARM child of the server's fork helper takes the short path: what the helper did
    once (signal dispositions, the descriptor limit, the streams) is left out, and the
    rest of _run_in_process is done in this one frame, the environment as bytes prepared
    by the server. A child the server forked itself (its helper gone) takes
    exec_program's general path.
    """
    global _helper_fd_limit, _ready_stdio, _LOCALE_COERCED
    kind, module_name, changes = plan
    try:
        _dup2(fd, 0)
        _dup2(fd, 1)
        if fd > 1:
            _close(fd)
    except OSError as err:
        raise DescriptorTrouble(err.errno, err.strerror) from None
    if kind != WARM:
        exec_program(argv, keep_fds=(), changes=changes)
    limit = _helper_fd_limit
    if limit is None or not _ready_stdio:
        enc = _FS_ENCODING
        changes = {key.decode(enc, "surrogateescape"):
                   None if value is None else value.decode(enc, "surrogateescape")
                   for key, value in changes.items()}
        exec_program(argv, keep_fds=(), changes=changes, resolved=(module_name, {}))
    # The helper flushed its streams before forking: nothing of this child is buffered.
    _helper_fd_limit, _ready_stdio = None, False
    _closerange(3, limit)
    if _LOCALE_COERCED:
        _LOCALE_COERCED = False
    _change_raw_environment(changes)
    if b"TZ" in changes:
        time.tzset()
    try:
        (_title or _title_setter())(" ".join(argv))
    except Exception:
        pass
    sys.argv = list(argv)
    _clear_atexit()
    module = _modules.get(module_name) or importlib.import_module(module_name)
    _exit(_call_main(module.main, list(argv)))


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
        import traceback
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
        _run_exitfuncs()
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
