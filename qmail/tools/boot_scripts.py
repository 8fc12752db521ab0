"""qmail's ROOT/boot/ scripts: how qmail is started with each default delivery.

qmail 1.03 ships boot/home, home+df, proc, proc+df, binm1, binm1+df, binm2, binm2+df,
binm3 and binm3+df; each runs qmail-start with one default delivery (what qmail-local
does for a user without a .qmail file) and clears the environment. qmail-install
writes them with `write_all(root)`; ROOT/control/defaultdelivery, read by the
service-template run script, holds the delivery alone.

Difference from qmail 1.03: the originals send the log through splogger to syslog; these
leave it on descriptor 1 (qmail-start without a logger), for multilog under supervise,
unless a logger command is given.
"""

import os
import shlex

# name -> (default delivery, the comment lines the original gives it)
DELIVERIES = {
    "home": ("./Mailbox", [
        "Using qmail-local to deliver messages to ~/Mailbox by default."]),
    "home+df": ("|dot-forward .forward\n./Mailbox", [
        "Using dot-forward to support sendmail-style ~/.forward files.",
        "Using qmail-local to deliver messages to ~/Mailbox by default."]),
    "proc": ("|preline procmail", [
        "Using procmail to deliver messages to /var/spool/mail/$USER by default."]),
    "proc+df": ("|dot-forward .forward\n|preline procmail", [
        "Using dot-forward to support sendmail-style ~/.forward files.",
        "Using procmail to deliver messages to /var/spool/mail/$USER by default."]),
    "binm1": ('|preline -f /usr/libexec/mail.local -r "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using BSD 4.4 binmail interface: /usr/libexec/mail.local -r"]),
    "binm1+df": ('|dot-forward .forward\n'
                 '|preline -f /usr/libexec/mail.local -r "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using dot-forward to support sendmail-style ~/.forward files.",
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using BSD 4.4 binmail interface: /usr/libexec/mail.local -r"]),
    "binm2": ('|preline -f /bin/mail -r "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using SVR4 binmail interface: /bin/mail -r"]),
    "binm2+df": ('|dot-forward .forward\n'
                 '|preline -f /bin/mail -r "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using dot-forward to support sendmail-style ~/.forward files.",
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using SVR4 binmail interface: /bin/mail -r"]),
    "binm3": ('|preline -f /bin/mail -f "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using V7 binmail interface: /bin/mail -f"]),
    "binm3+df": ('|dot-forward .forward\n'
                 '|preline -f /bin/mail -f "${SENDER:-MAILER-DAEMON}" -d "$USER"', [
        "Using dot-forward to support sendmail-style ~/.forward files.",
        "Using binmail to deliver messages to /var/spool/mail/$USER by default.",
        "Using V7 binmail interface: /bin/mail -f"]),
}


def script(name: str, root: str, logger: tuple[str, ...] = ()) -> str:
    """The text of ROOT/boot/NAME."""
    delivery, comments = DELIVERIES[name]
    extra_path = "/usr/local/bin:" if name.startswith("proc") else ""
    words = " ".join(shlex.quote(w) for w in logger)
    lines = ["#!/bin/sh", ""]
    if logger:
        lines.append(f"# Using {logger[0]} to handle the log.")
    else:
        lines.append("# The log goes to descriptor 1 (multilog under supervise).")
    lines += [f"# {c}" for c in comments]
    quoted = "'" + delivery.replace("'", "'\\''") + "'"
    lines += ["", f'exec env - PATH="{root}/bin:{extra_path}$PATH" QMAIL_ROOT="{root}" \\',
              f"qmail-start {quoted}" + (f" {words}" if words else "")]
    return "\n".join(lines) + "\n"


def write_all(root: str, logger: tuple[str, ...] = ()) -> None:
    """Write every ROOT/boot script (mode 0755)."""
    boot = os.path.join(root, "boot")
    os.makedirs(boot, exist_ok=True)
    for name in DELIVERIES:
        path = os.path.join(boot, name)
        with open(path, "w") as f:
            f.write(script(name, root, logger))
        os.chmod(path, 0o755)
