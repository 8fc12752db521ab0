"""qmail-local: deliver or forward a mail message (qmail-local(8)).

Synopsis:
    qmail-local [ -nN ] user homedir local dash ext domain sender defaultdelivery

The message is on descriptor 0, which must be seekable (each delivery rereads it from
the start). qmail-local switches to homedir, finds the controlling .qmail file
(`.qmail` + dash + ext, then the -default files: see qmail/delivery/dot_qmail.py), and follows its
instructions in order: mbox files and Maildirs get Return-Path and Delivered-To lines
(mbox also a From_ line), programs run under /bin/sh -c in homedir with the delivery
described in the environment (qmail-command(8)), and forwards are collected and sent
through qmail-queue after everything else succeeded, with a Delivered-To line. An empty
or missing .qmail file (when dash is empty) means defaultdelivery.

-n: print the instructions (`maildir X`, `mbox X`, `program X`, `forward X`) instead of
following them; -N (default): follow them.

Output: on success `did F+W+P` (files, forwards, programs) and `qp N` when something was
forwarded; otherwise the reason, in qmail's words, which qmail-send logs.

Exit codes: 0 delivered; 100 permanent failure (bounce); 111 temporary failure (defer).
A program exiting 99 stops further instructions (success); 100, 64, 65, 70, 76, 77, 78 and
112 are permanent; any other non-zero exit is temporary; a crash is temporary.

Deferrals: a home directory writable by others, or sticky (the user is editing .qmail);
a .qmail file writable by others; a message already carrying this Delivered-To line
bounces as a loop.

Environment: $QMAIL_ROOT and $QMAILQUEUE (where forwards are queued); everything else is
passed on to programs with the qmail-command(8) variables added.
"""

import errno
import os
import signal
import stat
import sys
import time

from qmail.config import install_root
from qmail.delivery import delivery_env, dot_qmail, forwarding, maildir, mbox
from ucspi.runtime import durable, exitcodes, sgetopt

PROG = "qmail-local"
USAGE = "qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty"
PATTERN = 0o002  # conf-patrn: mode bits a home or .qmail file must not have


class Stop(Exception):
    """End qmail-local with code after writing text (qmail's strerr_die)."""

    def __init__(self, code: int, text: str):
        super().__init__(code, text)
        self.code = code
        self.text = text


def say(fd: int, text: bytes) -> None:
    try:
        durable.write_all(fd, text)
    except OSError:
        pass


def reason(err: OSError) -> str:
    return exitcodes.error_str(err)


def name(path: bytes) -> str:
    return os.fsdecode(path)


def rewind() -> None:
    """Every delivery starts at the message's first byte."""
    try:
        os.lseek(0, 0, os.SEEK_SET)
    except OSError:
        raise Stop(111, "Unable to rewind message. (#4.3.0)") from None


def check_home(doit: bool) -> None:
    try:
        st = os.stat(".")
    except OSError as err:
        raise Stop(111, f"Unable to stat home directory: {reason(err)}. (#4.3.0)") from None
    if st.st_mode & PATTERN:
        raise Stop(111, "Uh-oh: home directory is writable. (#4.7.0)")
    if st.st_mode & stat.S_ISVTX:
        if doit:
            raise Stop(111, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)")
        say(2, b"Warning: home directory is sticky.\n")


def header_lines(limit: int = 1 << 26):
    """The message's header lines (newline kept), read from descriptor 0's start."""
    offset, pending = 0, b""
    while offset < limit:
        try:
            chunk = os.pread(0, 65536, offset)
        except OSError as err:
            raise Stop(111, f"Unable to read message: {reason(err)}. (#4.3.0)") from None
        if not chunk:
            return
        offset += len(chunk)
        pending += chunk
        while True:
            cut = pending.find(b"\n")
            if cut < 0:
                break
            line, pending = pending[:cut + 1], pending[cut + 1:]
            if len(line) <= 1:
                return
            yield line


def bounce_loops(dtline: bytes) -> None:
    """A message that already has our Delivered-To line in its header is looping."""
    rewind()
    for line in header_lines():
        if line == dtline:
            raise Stop(100, "This message is looping: it already has my Delivered-To line. (#5.4.6)")


def open_dot_qmail(path: bytes) -> tuple[bytes, bool] | None:
    """(contents, execute bit) of the .qmail file path, or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        if exitcodes.error_temp(err.errno) or err.errno in (errno.EPERM, errno.EACCES):
            raise Stop(111, f"Unable to open {name(path)}: {reason(err)}. (#4.3.0)") from None
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_mode & PATTERN:
            raise Stop(111, "Uh-oh: .qmail file is writable. (#4.7.0)")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), bool(st.st_mode & stat.S_IXUSR)
    except OSError as err:
        raise Stop(111, f"Unable to open {name(path)}: {reason(err)}. (#4.3.0)") from None
    finally:
        os.close(fd)


def find_dot_qmail(dash: bytes, ext: bytes) -> tuple[bytes, bool, bytes | None] | None:
    """(contents, execute bit, DEFAULT) of the controlling .qmail file, or None."""
    for path, default in dot_qmail.candidates(dash, ext):
        found = open_dot_qmail(path)
        if found is not None:
            return found[0], found[1], default
    return None


def exists(path: bytes) -> bool:
    try:
        os.stat(path)
        return True
    except OSError as err:
        if exitcodes.error_temp(err.errno):
            raise Stop(111, f"Unable to open {name(path)}: {reason(err)}. (#4.3.0)") from None
        return False


def owner_files(dash: bytes, ext: bytes) -> tuple[bool, bool]:
    """Whether .qmail-EXT-owner and .qmail-EXT-owner-default exist (mailing-list owner)."""
    base = b".qmail" + dash + dot_qmail.safe_ext(ext)
    owner = exists(base + b"-owner")
    return owner, owner and exists(base + b"-owner-default")


def deliver_maildir(path: bytes, head: bytes) -> None:
    rewind()
    try:
        maildir.deliver(name(path), head, 0)
    except maildir.MaildirError as err:
        if err.kind == "chdir":
            raise Stop(111, "Unable to chdir to maildir. (#4.2.1)") from None
        if err.kind == "read":
            raise Stop(111, "Unable to read message. (#4.3.0)") from None
        raise Stop(111, "Temporary error on maildir delivery. (#4.3.0)") from None


def deliver_mbox(path: bytes, head: bytes) -> None:
    rewind()
    try:
        mbox.append(name(path), head, 0)
    except mbox.MboxError as err:
        why = reason(err.err) if err.err is not None else ""
        if err.kind == "open":
            raise Stop(111, f"Unable to open {name(path)}: {why}. (#4.2.1)") from None
        if err.kind == "lock":
            raise Stop(111, "File has been locked for 30 seconds straight. (#4.3.0)") from None
        if err.kind == "read":
            raise Stop(111, f"Unable to read message: {why}. (#4.3.0)") from None
        raise Stop(111, f"Unable to write {name(path)}: {why}. (#4.3.0)") from None


def run_program(command: bytes, env: dict) -> bool:
    """Run the user's command under /bin/sh -c; True when it asked (99) to stop here."""
    rewind()
    try:
        pid = os.posix_spawn(b"/bin/sh", [b"/bin/sh", b"-c", command], env,
                             setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as err:
        raise Stop(111, f"Unable to run /bin/sh: {reason(err)}. (#4.3.0)") from None
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise Stop(111, "Aack, child crashed. (#4.3.0)")
    code = os.WEXITSTATUS(status)
    if code in delivery_env.PERMANENT_PROGRAM_CODES:
        raise Stop(100, "")
    if code == 99:
        return True
    if code != 0:
        raise Stop(111, "")
    return False


def forward(recipients: list[bytes], sender: bytes, dtline: bytes) -> int:
    """Queue the message (with our Delivered-To line) to recipients; the qp."""
    rewind()
    try:
        result, qp = forwarding.forward(0, dtline, sender, recipients,
                                        root=install_root.root(), from_start=True)
    except forwarding.ReadError as err:
        raise Stop(111, f"Unable to read message: {reason(err.err)}. (#4.3.0)") from None
    if result.code != 0:
        raise Stop(100 if result.permanent else 111, f"Unable to forward message: {result.text}.")
    return qp


def deliver(doit: bool, args: list[bytes]) -> bytes:
    """Follow the instructions for this delivery; the success report."""
    user, home, local, dash, ext, host, sender, aliasempty = args
    if not home.startswith(b"/"):
        exitcodes.usage(PROG, USAGE)
    try:
        os.chdir(home)
    except OSError as err:
        raise Stop(111, f"Unable to switch to {name(home)}: {reason(err)}. (#4.3.0)") from None
    check_home(doit)

    d = delivery_env.Delivery(user=user, home=home, local=local, ext=ext, host=host,
                              sender=sender)
    dtline = delivery_env.dt_line(d)
    if doit:
        bounce_loops(dtline)
    rpline = delivery_env.rp_line(d)
    ufline = mbox.from_line(sender, int(time.time()))

    found = find_dot_qmail(dash, ext)
    if found is None and dash:
        raise Stop(100, "Sorry, no mailbox here by that name. (#5.1.1)")
    text, forward_only, default = found if found is not None else (b"", False, None)

    owner = owner_default = False
    if sender and sender != b"#@[]":
        owner, owner_default = owner_files(dash, ext)
    newsender = delivery_env.new_sender(d, owner, owner_default)
    env = delivery_env.environment(dict(os.environb), d, newsender, ufline, default)

    if not text:
        text, forward_only = aliasempty, False
    try:
        instructions = dot_qmail.parse(text)
    except dot_qmail.FirstLineBlank:
        raise Stop(111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)") from None

    files = forwards = programs = 0
    recipients: list[bytes] = []
    for ins in instructions:
        if ins.kind == "list":
            forward_only = True
        elif ins.kind in ("maildir", "mbox"):
            files += 1
            if forward_only:
                raise Stop(111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")
            if not doit:
                say(1, ins.kind.encode() + b" " + ins.target + b"\n")
            elif ins.kind == "maildir":
                deliver_maildir(ins.target, rpline + dtline)
            else:
                deliver_mbox(ins.target, ufline + rpline + dtline)
        elif ins.kind == "program":
            programs += 1
            if forward_only:
                raise Stop(111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
            if not doit:
                say(1, b"program " + ins.target + b"\n")
            elif run_program(ins.target, env):
                break
        else:
            forwards += 1
            if doit:
                recipients.append(ins.target)
            else:
                say(1, b"forward " + ins.target + b"\n")

    qp = forward(recipients, newsender, dtline) if recipients and doit else 0
    report = b"did %d+%d+%d\n" % (files, forwards, programs)
    if qp:
        report += b"qp %d\n" % qp
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    os.umask(0o077)
    opts, rest = sgetopt.options(argv, "nN", PROG, USAGE)
    doit = True
    for opt, _ in opts:
        doit = opt == "N"
    if len(rest) != 8:
        exitcodes.usage(PROG, USAGE)
    try:
        report = deliver(doit, [os.fsencode(a) for a in rest])
    except Stop as stop:
        if stop.text:
            say(2, os.fsencode(stop.text) + b"\n")
        return stop.code
    except MemoryError:
        say(2, b"Out of memory. (#4.3.0)\n")
        return 111
    say(1, report)
    return 0
