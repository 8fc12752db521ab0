"""DNS look-ups for the ucspi tools, through dnspython, configured as djbdns clients are.

djbdns programs ask the servers listed in $DNSCACHEIP (dotted addresses separated by
spaces or commas) when it is set, else those of /etc/resolv.conf. Every look-up here
returns a value, None/[] for "no such data", and raises DNSTrouble for a temporary
failure (timeout, SERVFAIL, no servers), so callers can tell the two apart.
"""

import os

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

DEFAULT_TIMEOUT = 10.0


class DNSTrouble(Exception):
    """Temporary DNS failure: no answer could be had right now."""


def resolver(env=None, timeout: float = DEFAULT_TIMEOUT) -> dns.resolver.Resolver:
    """A resolver honouring $DNSCACHEIP, else /etc/resolv.conf."""
    env = os.environ if env is None else env
    cache = env.get("DNSCACHEIP", "").replace(",", " ").split()
    if cache:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = cache
    else:
        try:
            r = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = ["127.0.0.1"]
    r.lifetime = timeout
    r.timeout = min(timeout, 3.0)
    return r


def _query(name, rdtype: str, env=None, timeout: float = DEFAULT_TIMEOUT):
    try:
        return resolver(env, timeout).resolve(name, rdtype, search=False, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration,
            dns.exception.DNSException) as err:
        raise DNSTrouble(str(err)) from err


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def name_of(ip: str, env=None, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The first PTR name of ip, lowercase, without the final dot; None if it has none."""
    answer = _query(dns.reversename.from_address(ip), "PTR", env, timeout)
    if not answer or answer.rrset is None:
        return None
    for rr in answer:
        return _text(rr.target)
    return None


def ips_of(host: str, env=None, timeout: float = DEFAULT_TIMEOUT, ipv6: bool = False) -> list[str]:
    """The A records of host (and AAAA, with ipv6), in the order served."""
    found = []
    for rdtype in ("A", "AAAA") if ipv6 else ("A",):
        answer = _query(host, rdtype, env, timeout)
        if answer and answer.rrset is not None:
            found.extend(rr.address for rr in answer)
    return found


def txt_of(name: str, env=None, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Each TXT record of name, its strings joined, decoded as Latin-1."""
    answer = _query(name, "TXT", env, timeout)
    if not answer or answer.rrset is None:
        return []
    return [b"".join(rr.strings).decode("latin-1") for rr in answer]
