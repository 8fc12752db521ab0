"""A running qmail-start/qmail-send in an embedded tree owned by an ordinary user.

    rig = Rig(root, user, tmp)          # tmp: a directory that user can read
    rig.start()                         # qmail-start ./Maildir/ as user; log in rig.log
    rig.inject([b"demo@mail.example.com"], sender="demo@mail.example.com", subject="s1")
    rig.log.wait_line("end msg")
    rig.maildir("demo")                 # messages delivered to demo's Maildir

Remote deliveries go to a fake qmail-remote (a shell script, QMAILREMOTE) whose answer
depends on the recipient's local part: defer*, fail*, else success.
"""

import os
import re
from pathlib import Path

from qmail.queue import queue_layout
from tests import support

FQDN = "mail.example.com"

FAKE_REMOTE = r"""#!/bin/sh
# qmail-remote host sender recip: answer by the recipient's local part
cat > /dev/null
case "$3" in
  defer*) printf 'Zfake remote says try later.\n\0' ;;
  fail*) printf 'hfake remote says no such user.\n\0DGiving up.\n\0' ;;
  *) printf 'r\0Kfake remote accepted %s from %s at %s.\n\0' "$3" "$2" "$1" ;;
esac
exit 0
"""

LINE = re.compile(
    r"^(new msg \d+"
    r"|info msg \d+: bytes \d+ from <[^ ]*> qp \d+ uid \d+"
    r"|starting delivery \d+: msg \d+ to (local|remote) \S*"
    r"|status: local \d+/\d+ remote \d+/\d+( exitasap)?"
    r"|delivery \d+: (success|failure|deferral): \S*"
    r"|bounce msg \d+ qp \d+"
    r"|end msg \d+"
    r"|triple bounce: discarding bounce/\d+"
    r"|status: exiting"
    r"|(warning|alert): .*)$")


class Rig:
    def __init__(self, root: str, user, tmp: Path):
        self.root = root
        self.user = user
        self.tmp = Path(tmp)
        self.remote = self.tmp / "fake-remote"
        self.remote.write_text(FAKE_REMOTE)
        self.remote.chmod(0o755)
        self.proc = None
        self.env = support.suite_env(QMAIL_ROOT=root, QMAILREMOTE=str(self.remote))

    @property
    def log(self) -> support.LineReader:
        return self.proc.out

    def start(self, *args: str) -> support.Proc:
        argv = support.as_user([support.prog("qmail-start"), *(args or ("./Maildir/",))], self.user)
        self.proc = support.Proc(argv, env=self.env)
        self.log.wait_line("status: local 0/", timeout=20)
        return self.proc

    def inject(self, recipients, sender: str = f"demo@{FQDN}", subject: str = "test",
               body: bytes = b"hello\n") -> None:
        message = b"Subject: " + subject.encode() + b"\n\n" + body
        argv = support.as_user([support.prog("qmail-inject"), "-f", sender,
                                *[r.decode() if isinstance(r, bytes) else r for r in recipients]],
                               self.user)
        done = support.run(argv, input=message, env=self.env, timeout=30)
        assert done.returncode == 0, done.stderr

    def alias(self, name: str, content: str) -> None:
        path = Path(self.root) / "alias" / f".qmail-{name}"
        path.write_text(content)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        path.chmod(0o644)

    def control(self, name: str, content: str) -> None:
        path = Path(self.root) / "control" / name
        path.write_text(content)
        path.chmod(0o644)

    def maildir(self, box: str) -> list[bytes]:
        base = Path(self.root) / ("alias" if box == "alias" else f"mailboxes/{box}") / "Maildir"
        found = []
        for sub in ("new", "cur"):
            for entry in sorted((base / sub).iterdir()) if (base / sub).exists() else []:
                found.append(entry.read_bytes())
        return found

    def queue_files(self, kind: str) -> list[int]:
        return sorted(queue_layout.numbers(queue_layout.queue_dir(self.root), kind))

    def queue_empty(self) -> bool:
        return not any(self.queue_files(k) for k in ("mess", "todo", "info", "local", "remote"))

    def history(self) -> list[str]:
        return self.proc.out.history

    def stop(self, sig=None) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.stop() if sig is None else self.proc.stop(sig)
        return code


def session_processes(pid: int) -> dict[int, tuple[str, int]]:
    """{pid: (command line, real uid)} of every process in pid's session."""
    sid = os.getsid(pid)
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) != sid:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            with open(f"/proc/{name}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        found[int(name)] = (cmdline, uid)
    return found

