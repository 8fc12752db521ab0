"""Recipient routing: local or remote, decided once per recipient (qmail-send(8)).

qmail-send rewrites each envelope recipient before storing it in the message's local/ or
remote/ file:

  * an address without @ gets @envnoathost;
  * while the domain is listed in control/percenthack, the last % of the local part
    becomes the @ (user%host@relay -> user@host);
  * a domain listed in control/locals is local, the address unchanged;
  * else control/virtualdomains is consulted, most specific entry first: the full
    address (user@domain), then the domain, then each shorter .suffix, then the empty
    key (a catch-all line ":prepend"); the first entry found decides.  An entry with an
    empty prepend is an exception (the address is remote); otherwise the address is
    local and becomes prepend-address;
  * anything else is remote, unchanged.

Domain keys are compared without regard to ASCII case, as qmail's constmap does; when a
key is listed twice the last line wins. Lines of virtualdomains without a colon are
ignored.

`strip_prepend` undoes the virtual-domain prefix for a bounce's recipient line.
"""

from dataclasses import dataclass, field

from qmail.config import control

LOCAL = 0
REMOTE = 1


def _fold(text: str) -> str:
    """ASCII-only lower case (constmap's case folding ignores everything else)."""
    return text.translate(_FOLD)


_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def parse_virtualdomains(lines: list[str]) -> dict[str, str]:
    """virtualdomains lines -> {folded key: prepend}; the last duplicate wins."""
    table = {}
    for line in lines:
        key, colon, prepend = line.partition(":")
        if colon:
            table[_fold(key)] = prepend
    return table


@dataclass
class Routes:
    """The control files routing depends on, already read."""

    envnoathost: str
    locals: set[str] = field(default_factory=set)
    percenthack: set[str] = field(default_factory=set)
    virtualdomains: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_lists(cls, envnoathost: str, locals_: list[str], percenthack: list[str],
                   virtualdomains: list[str]) -> "Routes":
        return cls(envnoathost, {_fold(x) for x in locals_},
                   {_fold(x) for x in percenthack}, parse_virtualdomains(virtualdomains))

    def rewrite(self, recip: str) -> tuple[int, str]:
        """(LOCAL or REMOTE, the address as stored for delivery)."""
        addr = recip
        at = addr.rfind("@")
        if at < 0:
            addr = addr + "@" + self.envnoathost
            at = len(recip)
        while _fold(addr[at + 1:]) in self.percenthack:
            percent = addr.rfind("%", 0, at)
            if percent < 0:
                break
            addr = addr[:percent] + "@" + addr[percent + 1:at]
            at = percent
        at = addr.rfind("@")
        if _fold(addr[at + 1:]) in self.locals:
            return LOCAL, addr
        for key in _lookup_keys(addr, at):
            prepend = self.virtualdomains.get(_fold(key))
            if prepend is None:
                continue
            if not prepend:
                break
            return LOCAL, prepend + "-" + addr
        return REMOTE, addr

    def strip_prepend(self, recip: str) -> str:
        """The address a bounce names: recip without its virtual-domain prefix."""
        at = recip.rfind("@")
        if at < 0:
            return recip
        domain = recip[at + 1:]
        for i in range(len(domain) + 1):
            if i == 0 or i == len(domain) or domain[i] == ".":
                prepend = self.virtualdomains.get(_fold(domain[i:]))
                if prepend is None:
                    continue
                if (not prepend or not recip.startswith(prepend)
                        or recip[len(prepend):len(prepend) + 1] != "-"):
                    break
                return recip[len(prepend) + 1:]
        return recip


def _lookup_keys(addr: str, at: int):
    """The virtualdomains keys to try, most specific first: the whole address, the
    domain, each .suffix of it, and finally the empty key."""
    yield addr
    yield addr[at + 1:]
    for i in range(at + 1, len(addr)):
        if addr[i] == ".":
            yield addr[i:]
    yield ""


def load(root: str) -> Routes:
    """Read envnoathost, locals, percenthack and virtualdomains (ControlTrouble on
    trouble)."""
    return Routes.from_lists(
        control.line_or_default(root, "envnoathost"),
        control.lines_or_default(root, "locals"),
        control.read_lines(root, "percenthack") or [],
        control.read_lines(root, "virtualdomains") or [])
