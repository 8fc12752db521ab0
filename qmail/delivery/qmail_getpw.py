"""qmail-getpw: give addresses to users (qmail-getpw(8)).

Synopsis:
    qmail-getpw local

Prints `user\\0uid\\0gid\\0homedir\\0dash\\0ext\\0` for the account that controls the
local address: the longest account name that is local or the part of it before a `-`
(lowercased, at most 31 characters) whose uid is not 0 and which owns its home
directory; dash is `-` and ext the rest when a `-` was cut, both empty otherwise. When no
account matches, the `alias` user with dash `-` and ext local.

Exit codes (qmail-lspawn's qlx.h): 0 printed; 100 no argument; 115 NFS trouble (a home
directory could not be checked); 116 no alias user.
"""

import os
import sys

from qmail.config import users
from ucspi.runtime import durable

EXIT_NFS = 115
EXIT_NOALIAS = 116


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        return 100
    try:
        found = users.getpw(os.fsencode(argv[1]))
    except users.Trouble:
        return EXIT_NFS
    if found is None:
        return EXIT_NOALIAS
    durable.write_all(1, users.encode(found))
    return 0
