"""Changing who a process is: the one place the suite changes uid, gid and groups.

As djb's prot_gid/prot_uid: the supplementary groups, then the gid, then the uid (once the
uid is an ordinary user's, the others can no longer change). Callers: tcpserver and
unixserver (-u/-g/-U, after binding), setuidgid, qmail-start (each helper as its qmail
user), qmail-lspawn (each delivery as its user), qmail-queue (root becomes qmailq).

A warm child changes ids inside a forked interpreter, not at an exec, so `become` checks
what an exec would have guaranteed:
  * the change is complete: real, effective and saved uid and gid are all the new ones
    and the groups are exactly those asked for (setuid as root sets all three uids; a
    saved root uid would let the process take root back);
  * after a change away from root the process is not dumpable: the new user can neither
    ptrace it nor read its /proc files before its own exec, though it still holds what
    root had (the interpreter's memory, the modules root read). The kernel clears the
    flag itself unless /proc/sys/fs/suid_dumpable is 1; then prctl does it.
Failures raise PrivilegeError naming the step; the callers word the message as their C
originals do.
"""

from __future__ import annotations

import os


class PrivilegeError(OSError):
    """A step of the change failed (step: "gid" or "uid"), or did not take effect."""

    def __init__(self, step: str, err: OSError):
        super().__init__(err.errno, err.strerror)
        self.step = step


def become(uid: int | None, gid: int | None, groups: list[int] | None = None) -> None:
    """Take gid (groups: the supplementary groups, default [gid]) and then uid; None
    leaves that id as it is. Raises PrivilegeError."""
    # prctl is made ready while this process can still read the interpreter's library
    prctl = _prctl() if os.geteuid() == 0 and (uid or gid) else None
    if gid is not None:
        groups = [gid] if groups is None else groups
        try:
            os.setgroups(groups)
            os.setgid(gid)
        except OSError as err:
            raise PrivilegeError("gid", err) from err
        if os.getresgid() != (gid, gid, gid) or sorted(os.getgroups()) != sorted(set(groups)):
            raise PrivilegeError("gid", PermissionError(1, os.strerror(1)))
    if uid is not None:
        try:
            os.setuid(uid)
        except OSError as err:
            raise PrivilegeError("uid", err) from err
        if os.getresuid() != (uid, uid, uid):
            raise PrivilegeError("uid", PermissionError(1, os.strerror(1)))
    if prctl and prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise PrivilegeError("uid", PermissionError(1, os.strerror(1)))


def drop(prog: str, uid: int, gid: int) -> None:
    """tcpserver's and unixserver's -u/-g: 0 means leave as is. Fatal (111) with
    `prog: fatal: unable to set gid|uid: reason` when the switch fails."""
    from ucspi.runtime import exitcodes
    try:
        become(uid or None, gid or None)
    except PrivilegeError as err:
        exitcodes.fatal_sys(prog, f"unable to set {err.step}", err)


_PR_SET_DUMPABLE = 4


def _prctl():
    """libc's prctl where the kernel leaves a process that changed ids dumpable
    (/proc/sys/fs/suid_dumpable 1), else None: 0 or 2 make it not dumpable already."""
    try:
        with open("/proc/sys/fs/suid_dumpable", "rb") as f:
            if f.read().strip() != b"1":
                return None
    except OSError:
        pass
    import ctypes  # only on a host that asks for it: 2 MiB a forking parent need not hold
    return ctypes.CDLL(None).prctl
