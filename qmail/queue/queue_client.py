"""The client side of qmail-queue (qmail's qmail.c): start the queue program, feed it,
and turn its exit code into reply text. The ONLY place exit codes become text.

    result = queue_client.enqueue(message, sender, recipients)
    q = queue_client.Queue(); q.put(data) ...; q.from_(sender); q.to(rcpt); q.close()

The program is $QMAILQUEUE when set (the QMAILQUEUE patch), else ROOT/bin/qmail-queue,
else (no installed launcher) this suite's qmail-queue with QMAIL_ROOT=ROOT. Ours is
warm-started (ucspi.runtime.launch). The message goes to its descriptor 0, the envelope to
descriptor 1; descriptor 6 is a pipe on which a filter exiting 82 may write its own
reply text beginning with D (permanent) or Z (temporary).

Result(code, permanent, text): code 0 and text "" when queued; otherwise text is qmail's
reply text without its leading D/Z, e.g. "qq write error or disk full (#4.3.0)", and
permanent tells 5xx from 4xx. A crash of the queue program is code -signal.
"""

import fcntl
import os
from dataclasses import dataclass

from qmail.config import install_root
from qmail.formats import envelope
from ucspi.runtime import durable, launch

CUSTOM_ERROR = 82
CUSTOM_ERROR_FD = 6
CUSTOM_ERROR_LIMIT = 1024

# qmail.c's table: exit code -> reply text with its D/Z kind.
_TEXTS = {
    11: "Denvelope address too long for qq (#5.1.3)",
    115: "Denvelope address too long for qq (#5.1.3)",  # compatibility, as qmail.c
    31: "Dmail server permanently rejected message (#5.3.0)",
    51: "Zqq out of memory (#4.3.0)",
    52: "Zqq timeout (#4.3.0)",
    53: "Zqq write error or disk full (#4.3.0)",
    54: "Zqq read error (#4.3.0)",
    55: "Zqq unable to read configuration (#4.3.0)",
    56: "Zqq trouble making network connection (#4.3.0)",
    61: "Zqq trouble in home directory (#4.3.0)",
    62: "Zqq trouble creating files in queue (#4.3.0)",
    63: "Zqq trouble creating files in queue (#4.3.0)",
    64: "Zqq trouble creating files in queue (#4.3.0)",
    65: "Zqq trouble creating files in queue (#4.3.0)",
    66: "Zqq trouble creating files in queue (#4.3.0)",
    71: "Zmail server temporarily rejected message (#4.3.0)",
    72: "Zconnection to mail server timed out (#4.4.1)",
    73: "Zconnection to mail server rejected (#4.4.1)",
    74: "Zcommunication with mail server failed (#4.4.2)",
    81: "Zqq internal bug (#4.3.0)",
    91: "Zqq internal bug (#4.3.0)",
    120: "Zunable to exec qq (#4.3.0)",
}
READ_ERROR_TEXT = _TEXTS[54]
CRASHED_TEXT = "Zqq crashed (#4.3.0)"
WAITPID_TEXT = "Zqq waitpid surprise (#4.3.0)"
FORK_TEXT = "Zunable to fork (#4.3.0)"


@dataclass(frozen=True)
class Result:
    code: int
    permanent: bool
    text: str

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.text


def reply_text(code: int, custom: bytes = b"", write_failed: bool = False) -> str:
    """qmail.c's text, D or Z first, for exit code (or -signal); "" when queued."""
    if code < 0:
        return CRASHED_TEXT
    if code == 0:
        return READ_ERROR_TEXT if write_failed else ""
    if code == CUSTOM_ERROR:
        text = custom.split(b"\n", 1)[0].split(b"\0", 1)[0].decode("utf-8", "replace")
        if len(text) > 2 and text[0] in "DZ":
            return text
    if code in _TEXTS:
        return _TEXTS[code]
    if 11 <= code <= 40:
        return "Dqq permanent problem (#5.3.0)"
    return "Zqq temporary problem (#4.3.0)"


def result_of(code: int, custom: bytes = b"", write_failed: bool = False) -> Result:
    text = reply_text(code, custom, write_failed)
    return Result(code, text.startswith("D"), text[1:])


def program(root: str, env) -> list[str]:
    """argv of the queue program: $QMAILQUEUE, ROOT/bin/qmail-queue, or ours."""
    chosen = env.get("QMAILQUEUE")
    if chosen:
        return [chosen]
    return [install_root.program("qmail-queue", root)]


def _high(fd: int) -> int:
    """fd moved to 10 or above (close-on-exec), so dup2 onto 0, 1, 6 cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Queue:
    """One running queue program, fed incrementally (qmail_open/put/from/to/close)."""

    def __init__(self, root: str | None = None, env: dict | None = None):
        env = launch.environ() if env is None else dict(env)
        root = install_root.root(env) if root is None else root
        env[install_root.VARIABLE] = root
        self.write_failed = False
        self.pid = -1
        msg_r, self.msg_w = map(_high, os.pipe())
        env_r, self.env_w = map(_high, os.pipe())
        err_r, err_w = map(_high, os.pipe())
        self.err_r = err_r
        try:
            self.pid = launch.spawn(program(root, env), env,
                                       fds={0: msg_r, 1: env_r, CUSTOM_ERROR_FD: err_w},
                                       keep_fds=(CUSTOM_ERROR_FD,),
                                       complaint=None, code=120)  # as qmail.c's child
        except OSError:
            self.write_failed = True
        finally:
            for fd in (msg_r, env_r, err_w):
                os.close(fd)
        self._envelope: list[bytes] = []

    def _write(self, fd: int, data: bytes) -> None:
        if self.write_failed or fd < 0:
            return
        try:
            durable.write_all(fd, data)
        except OSError:
            self.write_failed = True

    def put(self, data: bytes) -> None:
        """More message bytes."""
        self._write(self.msg_w, data)

    def fail(self) -> None:
        """Make the result an error whatever the queue program says (qmail_fail)."""
        self.write_failed = True

    def from_(self, sender: str | bytes) -> None:
        """End of the message; the envelope sender."""
        os.close(self.msg_w)
        self.msg_w = -1
        self._envelope = [b"F" + envelope.to_bytes(sender) + b"\0"]

    def to(self, recipient: str | bytes) -> None:
        self._envelope.append(b"T" + envelope.to_bytes(recipient) + b"\0")

    def close(self) -> Result:
        """Finish the envelope, wait for the queue program, and say what happened."""
        if self.msg_w >= 0:
            os.close(self.msg_w)
            self.msg_w = -1
        self._envelope.append(b"\0")
        self._write(self.env_w, b"".join(self._envelope))
        os.close(self.env_w)
        self.env_w = -1
        if self.pid < 0:
            os.close(self.err_r)
            return Result(-1, False, FORK_TEXT[1:])
        custom = _read_limited(self.err_r)
        os.close(self.err_r)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return Result(-1, False, WAITPID_TEXT[1:])
        if os.WIFSIGNALED(status):
            return result_of(-os.WTERMSIG(status))
        return result_of(os.WEXITSTATUS(status), custom, self.write_failed)


def _read_limited(fd: int) -> bytes:
    """What the queue program wrote on descriptor 6, until it closes it (it exits)."""
    data = b""
    while len(data) < CUSTOM_ERROR_LIMIT:
        try:
            chunk = os.read(fd, CUSTOM_ERROR_LIMIT)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def enqueue(message: bytes, sender: str | bytes, recipients, root: str | None = None,
            env: dict | None = None) -> Result:
    """Queue one message; Result(0, False, "") on success."""
    queue = Queue(root, env)
    queue.put(message)
    queue.from_(sender)
    for rcpt in recipients:
        queue.to(rcpt)
    return queue.close()
