"""Control files: the one reader every qmail program uses (qmail-control(5)).

A control file lives in ROOT/control/NAME. The readers are tri-state, as qmail's control.c:
a value, None when the file does not exist (the caller falls back to the default of
qmail-control(5), which `default()` gives), or ControlTrouble when the file exists but
cannot be read or parsed (the caller treats that as a temporary failure: exit 111 or a
4xx reply, never a silent default).

Formats, as control.c reads them:
  * a one-line file (me, databytes, ...): its first line without trailing spaces and tabs;
  * a list file (locals, rcpthosts, badmailfrom, ...): every line without trailing spaces
    and tabs; empty lines and lines beginning with # are dropped;
  * a number file: the first line, all decimal digits;
  * a cdb (morercpthosts.cdb, ...): key look-ups with cdblib.
"""

import os

import cdblib

# Defaults from qmail-control(5). "me" marks a default taken from control/me; None means
# no default (the program decides what absence means).
DEFAULTS: dict[str, str | int | None] = {
    "badmailfrom": None,
    "bouncefrom": "MAILER-DAEMON",
    "bouncehost": "me",
    "concurrencylocal": 10,
    "concurrencyremote": 20,
    "databytes": 0,
    "defaultdomain": "me",
    "defaulthost": "me",
    "doublebouncehost": "me",
    "doublebounceto": "postmaster",
    "envnoathost": "me",
    "helohost": "me",
    "idhost": "me",
    "localiphost": "me",
    "locals": "me",
    "me": None,
    "morercpthosts": None,
    "percenthack": None,
    "plusdomain": "me",
    "qmqpservers": None,
    "queuelifetime": 604800,
    "rcpthosts": None,
    "smtpgreeting": "me",
    "smtproutes": None,
    "timeoutconnect": 60,
    "timeoutremote": 1200,
    "timeoutsmtpd": 1200,
    "virtualdomains": None,
}


class ControlTrouble(Exception):
    """A control file exists but cannot be read or parsed: a temporary failure."""


def path(root: str, name: str) -> str:
    return os.path.join(root, "control", name)


def _read(root: str, name: str) -> bytes | None:
    try:
        with open(path(root, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ControlTrouble(f"unable to read control/{name}: {err.strerror}") from err


def read_line(root: str, name: str) -> str | None:
    """The first line of control/NAME without trailing spaces and tabs; None if absent."""
    data = _read(root, name)
    if data is None:
        return None
    return data.split(b"\n", 1)[0].rstrip(b" \t").decode("latin-1")


def read_lines(root: str, name: str) -> list[str] | None:
    """The meaningful lines of a list file; None if absent."""
    data = _read(root, name)
    if data is None:
        return None
    lines = []
    for raw in data.split(b"\n"):
        line = raw.rstrip(b" \t").decode("latin-1")
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def read_int(root: str, name: str) -> int | None:
    """The number in control/NAME; None if absent; ControlTrouble if it is not a number."""
    line = read_line(root, name)
    if line is None:
        return None
    if not line or not all("0" <= ch <= "9" for ch in line):
        raise ControlTrouble(f"unable to parse control/{name}")
    return int(line)


def me(root: str) -> str:
    """control/me, which every default marked "me" refers to; ControlTrouble if absent."""
    value = read_line(root, "me")
    if value is None:
        raise ControlTrouble("unable to read control/me")
    return value


def default(root: str, name: str):
    """The qmail-control(5) default of NAME (control/me's value where that is the rule)."""
    value = DEFAULTS.get(name)
    return me(root) if value == "me" else value


def line_or_default(root: str, name: str) -> str | None:
    """read_line, falling back to the documented default (control_rldef)."""
    value = read_line(root, name)
    return default(root, name) if value is None else value


def int_or_default(root: str, name: str) -> int:
    """read_int, falling back to the documented default."""
    value = read_int(root, name)
    if value is None:
        value = DEFAULTS.get(name)
        if not isinstance(value, int):
            raise ControlTrouble(f"no default for control/{name}")
    return value


def lines_or_default(root: str, name: str) -> list[str]:
    """read_lines, falling back to [default] (locals falls back to me), or []."""
    value = read_lines(root, name)
    if value is not None:
        return value
    fallback = default(root, name)
    return [fallback] if isinstance(fallback, str) else []


def cdb_get(root: str, name: str, key: bytes) -> bytes | None:
    """Look key up in control/NAME (a cdb); None if absent or not found.

    ControlTrouble when the cdb exists but cannot be read or is corrupt.
    """
    data = _read(root, name)
    if data is None:
        return None
    try:
        return cdblib.Reader(data).get(key)
    except Exception as err:  # cdblib raises plain exceptions on corrupt data
        raise ControlTrouble(f"unable to read control/{name}: corrupt cdb") from err
