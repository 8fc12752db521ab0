"""Which recipient domains this host accepts mail for: control/rcpthosts and morercpthosts.cdb.

qmail-smtpd(8) and qmail-qmtpd(8) both ask here. The rules, as qmail 1.03's rcpthosts.c:
  * no control/rcpthosts at all: every recipient is allowed (the open-relay default);
  * an address without @ is allowed (envnoathost will complete it);
  * the host part (after the last @, lower-cased) is looked up whole and then with each
    leading label removed but the dot kept: for mail.example.com the keys are
    `mail.example.com`, `.example.com`, `.com`. rcpthosts lines match case-insensitively;
    morercpthosts.cdb (compiled by qmail-newmrh, keys lower-cased) is asked only when
    rcpthosts exists and did not match.

Trouble reading either file raises control.ControlTrouble (the caller answers 421/451).
"""

import os

from qmail.config import control
from ucspi.runtime import cdb_rules


class Rcpthosts:
    """The loaded rcpthosts list and the path of morercpthosts.cdb, read once per session.

    Addresses are str holding bytes decoded as latin-1, so every byte round-trips.
    """

    def __init__(self, root: str):
        lines = control.read_lines(root, "rcpthosts")
        self.active = lines is not None
        self.hosts = {lower(line) for line in lines or ()}
        self.more = control.path(root, "morercpthosts.cdb")
        if self.active and not os.path.exists(self.more):
            self.more = None

    def allows(self, address: str) -> bool:
        """Whether mail to address may be accepted without relaying rights."""
        if not self.active:
            return True
        at = address.rfind("@")
        if at == -1:
            return True
        keys = suffixes(lower(address[at + 1:]))
        if any(key in self.hosts for key in keys):
            return True
        if self.more is None or not keys:
            return False
        try:
            return cdb_rules.find_data(self.more, [k.encode("latin-1") for k in keys]) is not None
        except FileNotFoundError:
            return False
        except (OSError, cdb_rules.CorruptRules) as err:
            raise control.ControlTrouble("unable to read control/morercpthosts.cdb") from err


def lower(text: str) -> str:
    """ASCII-only lower case, as djb's case_lowerb (text is bytes decoded as latin-1)."""
    return text.encode("latin-1").lower().decode("latin-1")


def suffixes(host: str) -> list[str]:
    """host itself, then every tail of host that begins with a dot (rcpthosts.c's keys)."""
    if not host:
        return []
    return [host] + [host[i:] for i in range(1, len(host)) if host[i] == "."]
