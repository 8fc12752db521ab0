"""Exit codes and diagnostics in djb's shapes, owned here and nowhere else.

Every command reports through these helpers:

    prog: usage: prog [ options ] ...      exit 100
    prog: fatal: what went wrong: reason   exit 111 (temporary) or 100 (permanent)
    prog: warning: what went wrong          no exit

Reasons for system errors use the wording of djb's error_str ("file does not exist",
"address already used"), not strerror's, so our messages read as the C tools' do; which
errno values are temporary (111, try later) rather than permanent is djb's error_temp.
The helpers raise SystemExit, which works the same in a cold process and in a warm-started
child (ucspi.runtime.launch turns it into the process exit status).
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # typing costs 3 ms at start-up; the small tools start in ~20
if TYPE_CHECKING:
    from typing import NoReturn

PERMANENT = 100  # usage errors, permanent failures
TEMPORARY = 111  # system trouble: try again later

# djb's wording for errno values (error_str.c); anything else falls back to strerror.
_ERROR_TEXT = {
    0: "no error",
    errno.EINTR: "interrupted system call",
    errno.ENOMEM: "out of memory",
    errno.ENOENT: "file does not exist",
    errno.ETXTBSY: "text busy",
    errno.EIO: "input/output error",
    errno.EEXIST: "file already exists",
    errno.ETIMEDOUT: "timed out",
    errno.EINPROGRESS: "operation in progress",
    errno.EAGAIN: "temporary failure",
    errno.EPIPE: "broken pipe",
    errno.EPERM: "permission denied",
    errno.EACCES: "access denied",
    errno.ENXIO: "device not configured",
    errno.EPROTO: "protocol error",
    errno.EISDIR: "is a directory",
    errno.ESRCH: "no such process",
    errno.E2BIG: "argument list too long",
    errno.ENOEXEC: "exec format error",
    errno.EBADF: "file descriptor not open",
    errno.ECHILD: "no child processes",
    errno.EDEADLK: "operation would cause deadlock",
    errno.EFAULT: "bad address",
    errno.ENOTBLK: "not a block device",
    errno.EBUSY: "device busy",
    errno.EXDEV: "cross-device link",
    errno.ENODEV: "device does not support operation",
    errno.ENOTDIR: "not a directory",
    errno.EINVAL: "invalid argument",
    errno.ENFILE: "system cannot open more files",
    errno.EMFILE: "process cannot open more files",
    errno.ENOTTY: "not a tty",
    errno.EFBIG: "file too big",
    errno.ENOSPC: "out of disk space",
    errno.ESPIPE: "unseekable descriptor",
    errno.EROFS: "read-only file system",
    errno.EMLINK: "too many links",
    errno.EDOM: "input out of range",
    errno.ERANGE: "output out of range",
    errno.EALREADY: "operation already in progress",
    errno.ENOTSOCK: "not a socket",
    errno.EDESTADDRREQ: "destination address required",
    errno.EMSGSIZE: "message too long",
    errno.EPROTOTYPE: "incorrect protocol type",
    errno.ENOPROTOOPT: "protocol not available",
    errno.EPROTONOSUPPORT: "protocol not supported",
    errno.ESOCKTNOSUPPORT: "socket type not supported",
    errno.EOPNOTSUPP: "operation not supported",
    errno.EPFNOSUPPORT: "protocol family not supported",
    errno.EAFNOSUPPORT: "address family not supported",
    errno.EADDRINUSE: "address already used",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ENETDOWN: "network down",
    errno.ENETUNREACH: "network unreachable",
    errno.ENETRESET: "network reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ECONNRESET: "connection reset",
    errno.ENOBUFS: "out of buffer space",
    errno.EISCONN: "already connected",
    errno.ENOTCONN: "not connected",
    errno.ESHUTDOWN: "socket shut down",
    errno.ETOOMANYREFS: "too many references",
    errno.ECONNREFUSED: "connection refused",
    errno.ELOOP: "symbolic link loop",
    errno.ENAMETOOLONG: "file name too long",
    errno.EHOSTDOWN: "host down",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENOTEMPTY: "directory not empty",
    errno.EUSERS: "too many users",
    errno.EDQUOT: "disk quota exceeded",
    errno.ESTALE: "stale NFS file handle",
    errno.EREMOTE: "too many levels of remote in path",
    errno.ENOLCK: "no locks available",
    errno.ENOSYS: "system call not available",
}


def error_str(err: BaseException | int) -> str:
    """djb's text for an OSError (or errno number)."""
    if isinstance(err, int):
        num = err
    else:
        num = getattr(err, "errno", None)
        if num is None:
            return str(err) or type(err).__name__
    try:
        return _ERROR_TEXT[num]
    except KeyError:
        import os
        return os.strerror(num).lower()


# djb's error_temp.c: the errno values of trouble that may pass. Its #ifdefs leave out what
# a system lacks (EPROCLIM on Linux); so does hasattr.
_TEMPORARY_ERRNO = frozenset(getattr(errno, name) for name in (
    "EINTR", "ENOMEM", "ETXTBSY", "EIO", "ETIMEDOUT", "EWOULDBLOCK", "EAGAIN",
    "EDEADLK", "EBUSY", "ENFILE", "EMFILE", "EFBIG", "ENOSPC", "ENETDOWN", "ENETUNREACH",
    "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "ETOOMANYREFS", "ECONNREFUSED",
    "EHOSTDOWN", "EHOSTUNREACH", "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "ENOLCK",
) if hasattr(errno, name))


def error_temp(err: int) -> bool:
    """djb's error_temp: whether errno value err is temporary trouble (111: try again later)
    rather than permanent (100)."""
    return err in _TEMPORARY_ERRNO


def _file_buffer(stream):
    """The binary buffer under a text stream on a real descriptor, else None (e.g. capture objects)."""
    try:
        stream.fileno()
        return stream.buffer
    except (AttributeError, OSError, ValueError):
        return None


def say(line: str) -> None:
    """Write one diagnostic line to stderr, ignoring a closed stderr.

    Text that came from bytes via os.fsdecode (file names, input lines) is written back as
    those bytes, as the C tools print them, not backslash-escaped.
    """
    try:
        buffer = _file_buffer(sys.stderr)
        if buffer is None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        else:
            sys.stderr.flush()
            try:
                data = os.fsencode(line + "\n")
            except UnicodeError:  # not from fsdecode: escape what cannot be encoded
                data = (line + "\n").encode("utf-8", "backslashreplace")
            buffer.write(data)
            buffer.flush()
    except (OSError, ValueError):
        pass


def usage(prog: str, text: str) -> NoReturn:
    """`prog: usage: text`, exit 100."""
    say(f"{prog}: usage: {text}")
    raise SystemExit(PERMANENT)


def fatal(prog: str, msg: str, code: int = TEMPORARY) -> NoReturn:
    """`prog: fatal: msg`, exit code (111 unless told otherwise)."""
    say(f"{prog}: fatal: {msg}")
    raise SystemExit(code)


def fatal_sys(prog: str, msg: str, err: BaseException, code: int = TEMPORARY) -> NoReturn:
    """`prog: fatal: msg: reason`, exit code (111 unless told otherwise)."""
    say(f"{prog}: fatal: {msg}: {error_str(err)}")
    raise SystemExit(code)


def warn(prog: str, msg: str) -> None:
    """`prog: warning: msg`."""
    say(f"{prog}: warning: {msg}")


def warn_sys(prog: str, msg: str, err: BaseException) -> None:
    """`prog: warning: msg: reason`."""
    say(f"{prog}: warning: {msg}: {error_str(err)}")
