"""Recipient validation: the list of deliverable local addresses qmail-smtpd checks at RCPT.

Beyond qmail 1.03 (whose qmail-smtpd accepts any user at a local domain and bounces
later): control/validrcptto, compiled by qmail-newrcpt into control/validrcptto.cdb,
names the addresses that exist, so qmail-smtpd can refuse the others at RCPT and no
bounce goes back to a forged sender.

Text format (control/validrcptto), one entry a line, lower-cased; trailing spaces and
tabs dropped; empty lines and lines beginning with # ignored:
  user@example.com          this address exists
  user-default@example.com  user-ANYTHING@example.com exists (as .qmail-user-default)
  @example.com              every address at example.com exists (a catch-all)
Only domains that appear in the list are checked; mail to any other domain passes.

cdb encoding: each entry is a key with empty data; each domain mentioned is also a key
of its own (a bare domain, which no entry can be: entries all contain @).
"""

from qmail.config import control
from ucspi.runtime import cdb_rules

TEXT = "validrcptto"
CDB = "validrcptto.cdb"


class ParseError(Exception):
    """A line of control/validrcptto is not an address (args: line number, line)."""


def compile_keys(data: bytes) -> list[bytes]:
    """The cdb keys for a validrcptto text: entries in file order, then their domains."""
    entries, domains = [], {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b" \t").lower()
        if not line or line.startswith(b"#"):
            continue
        at = line.rfind(b"@")
        if at == -1 or at == len(line) - 1:
            raise ParseError(number, raw.decode("latin-1"))
        entries.append(line)
        domains.setdefault(line[at + 1:], None)
    return entries + list(domains)


def candidate_keys(address: str) -> tuple[bytes, list[bytes]] | None:
    """(domain key, keys any of which accepts address), or None when address has no domain."""
    raw = address.encode("latin-1").lower()
    at = raw.rfind(b"@")
    if at == -1 or at == len(raw) - 1:
        return None
    local, domain = raw[:at], raw[at:]
    keys = [raw, domain]
    for i in range(len(local) - 1, -1, -1):
        if local[i:i + 1] == b"-":
            keys.append(local[:i + 1] + b"default" + domain)
    return domain[1:], keys


def accepts(root: str, address: str) -> bool:
    """Whether validrcptto.cdb lets address through (True when there is no such cdb).

    Raises control.ControlTrouble when the cdb exists but cannot be read.
    """
    found = candidate_keys(address)
    if found is None:
        return True
    domain, keys = found
    path = control.path(root, CDB)
    try:
        if cdb_rules.find_data(path, [domain]) is None:
            return True
        return cdb_rules.find_data(path, keys) is not None
    except FileNotFoundError:
        return True
    except (OSError, cdb_rules.CorruptRules) as err:
        raise control.ControlTrouble(f"unable to read control/{CDB}") from err
