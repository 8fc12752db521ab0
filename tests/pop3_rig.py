"""The POP3 tests' rig: a POP user with a Maildir, the whole chain under our tcpserver
(`tcpserver -1 127.0.0.1 0 qmail-popup HOST checkpassword [more...] qmail-pop3d
Maildir`), and a raw client that checks every reply byte for byte.

The user: a password database of our own (CHECKPASSWORD_PASSWD/_SHADOW), whose one
account `popper` has the uid and gid of an ordinary user (the created suitetest as root,
else the current user), a home directory of its own under /tmp (reachable by that user)
and the password PASSWORD as a sha512-crypt hash. So the real checkpassword, the real
change of ids (as root) and qmail-pop3d's refusal of uid 0 are all on the path.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import crypt_r

from tests import support
from tests.ucspi_servers import start_tcpserver

HOST = "pop.example.test"
USER = "popper"
PASSWORD = "s3cret pass"
PAST = 3600  # seconds: messages are dated this far back (qmail-pop3d skips this second's)


APOP_CHECKPASSWORD = """#!{python}
import hashlib, os, sys
data = b""
while True:
    more = os.read(3, 4096)
    if not more:
        break
    data += more
user, password, stamp = data.split(b"\\0")[:3]
digest = hashlib.md5(stamp + {password!r}).hexdigest().encode()
if user != {user!r} or password not in ({password!r}, digest):
    sys.exit(1)
if os.getuid() == 0:
    os.setgroups([{gid}])
    os.setgid({gid})
    os.setuid({uid})
os.chdir({home!r})
os.execvp(sys.argv[1], sys.argv[1:])
"""


class PopUser:
    def __init__(self, extra_passwd: str = "", extra_shadow: str = ""):
        self.pw = support.unprivileged_user()
        self.uid, self.gid = self.pw.pw_uid, self.pw.pw_gid
        self.base = Path(tempfile.mkdtemp(prefix="pop3-"))
        os.chmod(self.base, 0o755)
        self.home = self.base / "home"
        self.maildir = self.home / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        stored = crypt_r.crypt(PASSWORD, "$6$rigsalt$")
        self.passwd = self.base / "passwd"
        self.shadow = self.base / "shadow"
        self.passwd.write_text(f"{USER}:x:{self.uid}:{self.gid}:POP user:{self.home}:/bin/sh\n"
                               + extra_passwd)
        self.shadow.write_text(f"{USER}:{stored}:19000:0:99999:7:::\n" + extra_shadow)
        self.chown(self.home)
        self.counter = 0

    def chown(self, path: Path) -> None:
        if os.getuid() == 0:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, self.gid, follow_symlinks=False)

    def deliver(self, data: bytes, subdir: str = "new", age: float = PAST, name: str | None = None) -> str:
        """A message file in Maildir/subdir dated age seconds back; its file name."""
        self.counter += 1
        name = name or f"{int(time.time() - age)}.M{self.counter}P{os.getpid()}.{HOST}"
        path = self.maildir / subdir / name
        path.write_bytes(data)
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        self.chown(path)
        return name

    def files(self) -> dict[str, bytes]:
        """Every message file: 'new/NAME' or 'cur/NAME' -> contents."""
        return {f"{sub}/{p.name}": p.read_bytes()
                for sub in ("new", "cur") for p in sorted((self.maildir / sub).iterdir())}

    def env(self, **extra) -> dict:
        settings = dict(CHECKPASSWORD_PASSWD=self.passwd, CHECKPASSWORD_SHADOW=self.shadow,
                        TCPREMOTEIP=None, TCPLOCALIP=None)
        return support.suite_env(**{**settings, **extra})

    def apop_checkpassword(self) -> str:
        """A checkpassword script of the tests that also takes APOP (the digest of the
        timestamp and PASSWORD, as our system checkpassword cannot), as curl uses it."""
        script = self.base / "apop-checkpassword"
        script.write_text(APOP_CHECKPASSWORD.format(python=support.PYTHON, user=USER.encode(),
                                                    password=PASSWORD.encode(), uid=self.uid,
                                                    gid=self.gid, home=str(self.home)))
        script.chmod(0o755)
        return str(script)

    def start(self, middle=(), env=None, popup_args=None, checkpassword=None):
        """tcpserver running the chain; (proc, port)."""
        chain = popup_args or [support.prog("qmail-popup"), HOST,
                               checkpassword or support.prog("checkpassword"),
                               *middle, support.prog("qmail-pop3d"), "Maildir"]
        return start_tcpserver([], chain, env=env or self.env(), cwd="/")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Client:
    """A raw POP3 client: send lines, read replies (bytes, CRLF included)."""

    def __init__(self, port: int, timeout: float = 30):
        self.sock = support.connect(port, timeout=timeout)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.line()

    def multi(self) -> bytes:
        """A multi-line answer's lines up to and including the "." line, as on the wire."""
        out = []
        while True:
            line = self.line()
            assert line, "connection closed inside a multi-line reply"
            out.append(line)
            if line == b".\r\n":
                return b"".join(out)

    def rest(self) -> bytes:
        """All the server still sends until it closes."""
        self.sock.settimeout(30)
        return self.file.read()

    def login(self, user: str = USER, password: str = PASSWORD) -> None:
        assert self.line().startswith(b"+OK <")
        assert self.cmd(b"USER " + user.encode()) == b"+OK \r\n"
        assert self.cmd(b"PASS " + password.encode()) == b"+OK \r\n"

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def wire(message: bytes) -> bytes:
    """What qmail-pop3d sends for a whole message after its +OK: each line (LF-ended, or
    the unterminated last) with CRLF and a leading dot doubled, then an empty line and
    the final dot. Written line by line, independently of qmail_pop3d.stuff."""
    lines = message.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = [(b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines]
    return b"".join(out) + b"\r\n.\r\n"


def wait_closed(sock: socket.socket, timeout: float = 30) -> bytes:
    return support.recv_all(sock, timeout=timeout)
