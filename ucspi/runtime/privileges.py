"""Dropping privileges as djb's prot_gid/prot_uid do: groups, then gid, then uid."""

import os

from ucspi.runtime import exitcodes


def drop(prog: str, uid: int, gid: int) -> None:
    """Switch to gid (supplementary groups = gid alone) and uid; 0 means leave as is.

    Fatal (111) with `prog: fatal: unable to set gid|uid: reason` when the switch fails.
    """
    if gid:
        try:
            os.setgroups([gid])
            os.setgid(gid)
        except OSError as err:
            exitcodes.fatal_sys(prog, "unable to set gid", err)
    if uid:
        try:
            os.setuid(uid)
        except OSError as err:
            exitcodes.fatal_sys(prog, "unable to set uid", err)
