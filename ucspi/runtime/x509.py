"""What sslserver and sslclient tell a program about a certificate (ucspi-ssl's ssl_env.c,
mod_ssl's names), read from its DER bytes: Python's ssl module gives the peer's
certificate only as DER (or, verified, as a dict without the algorithms), so the few
fields needed are read here with a small DER reader.

    fields(der, "SSL_CLIENT")  ->  {"SSL_CLIENT_M_VERSION": "3", "SSL_CLIENT_M_SERIAL": ...,
                                    "SSL_CLIENT_S_DN": "/C=DE/O=.../CN=...", "SSL_CLIENT_S_DN_CN": ...,
                                    "SSL_CLIENT_I_DN": ..., "SSL_CLIENT_A_SIG": "ecdsa-with-SHA256",
                                    "SSL_CLIENT_A_KEY": "id-ecPublicKey", "SSL_CLIENT_V_START":
                                    "Jan  2 03:04:05 2024 GMT", "SSL_CLIENT_V_END": ...,
                                    "SSL_CLIENT_CERT": PEM}
    names(der)  ->  (DNS names of subjectAltName, its IP addresses, the subject's CNs)

The formats are OpenSSL's: X509_NAME_oneline for the DNs, ASN1_TIME_print for the dates,
the decimal serial (BN_bn2dec), OpenSSL's long names for the algorithms ("UNKNOWN" for one
it does not know). Raises ValueError on bytes that are not a certificate.
"""

from __future__ import annotations

import ipaddress
import ssl

# OID -> (X509_NAME_oneline's short name, ucspi-ssl's component suffix or None)
_NAMES = {
    "2.5.4.6": ("C", "C"), "2.5.4.8": ("ST", "ST"), "2.5.4.7": ("L", "L"),
    "2.5.4.10": ("O", "O"), "2.5.4.11": ("OU", "OU"), "2.5.4.3": ("CN", "CN"),
    "2.5.4.12": ("title", "T"), "2.5.4.43": ("initials", "I"), "2.5.4.42": ("GN", "G"),
    "2.5.4.4": ("SN", "S"), "2.5.4.13": ("description", "D"),
    "2.5.4.45": ("x500UniqueIdentifier", "UID"), "1.2.840.113549.1.9.1": ("emailAddress", "Email"),
    "2.5.4.5": ("serialNumber", None), "0.9.2342.19200300.100.1.1": ("UID", None),
    "0.9.2342.19200300.100.1.25": ("DC", None), "2.5.4.9": ("street", None),
    "2.5.4.17": ("postalCode", None),
}
_ALGORITHMS = {
    "1.2.840.113549.1.1.1": "rsaEncryption", "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption", "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.10045.2.1": "id-ecPublicKey", "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224", "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384", "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.10040.4.1": "dsaEncryption", "1.2.840.10040.4.3": "dsaWithSHA1",
    "1.3.101.112": "ED25519", "1.3.101.113": "ED448",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SUBJECT_ALT_NAME = "2.5.29.17"


def _read(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, start of contents, end of contents, end of the element) at pos."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, start, end) of each element from start to end."""
    out = []
    while start < end:
        tag, body, body_end, start = _read(data, start)
        out.append((tag, body, body_end))
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _text(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    if tag == 0x14:  # TeletexString, as OpenSSL reads it
        return raw.decode("latin-1")
    return raw.decode("utf-8", "replace")


def _name(data: bytes, start: int, end: int) -> list[tuple[str, str]]:
    """A Name's (OID, value) pairs in order."""
    pairs = []
    for _, rdn_start, rdn_end in _children(data, start, end):
        for _, attr_start, attr_end in _children(data, rdn_start, rdn_end):
            (_, oid_start, oid_end), (vtag, v_start, v_end) = _children(data, attr_start, attr_end)[:2]
            pairs.append((_oid(data[oid_start:oid_end]), _text(vtag, data[v_start:v_end])))
    return pairs


def _oneline(pairs: list[tuple[str, str]]) -> str:
    """X509_NAME_oneline: /SN=value for each attribute."""
    return "".join(f"/{_NAMES.get(oid, (oid, None))[0]}={value}" for oid, value in pairs)


def _time(tag: int, raw: bytes) -> str:
    """ASN1_TIME_print's "Mon DD HH:MM:SS YYYY GMT" of a UTCTime or GeneralizedTime."""
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]Z
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:]
    else:
        year, rest = int(text[:4]), text[4:]
    month, day, hour, minute = int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8])
    second = int(rest[8:10]) if rest[8:10].isdigit() else 0
    return f"{_MONTHS[month - 1]} {day:2d} {hour:02d}:{minute:02d}:{second:02d} {year} GMT"


class Certificate:
    """The fields of one certificate that the SSL_* variables show."""

    def __init__(self, der: bytes):
        self.der = der
        _, cert_start, cert_end, _ = _read(der, 0)
        tbs_tag, tbs_start, tbs_end = _children(der, cert_start, cert_end)[0]
        items = _children(der, tbs_start, tbs_end)
        self.version = 1
        if items[0][0] == 0xA0:  # [0] EXPLICIT version
            _, v_start, v_end, _ = _read(der, items[0][1])
            self.version = int.from_bytes(der[v_start:v_end], "big") + 1
            items = items[1:]
        serial, signature, issuer, validity, subject, key_info = items[:6]
        self.serial = str(int.from_bytes(der[serial[1]:serial[2]], "big", signed=True))
        self.signature = self._algorithm(signature)
        self.issuer = _name(der, issuer[1], issuer[2])
        self.subject = _name(der, subject[1], subject[2])
        (b_tag, b_start, b_end), (a_tag, a_start, a_end) = _children(der, validity[1], validity[2])[:2]
        self.not_before = _time(b_tag, der[b_start:b_end])
        self.not_after = _time(a_tag, der[a_start:a_end])
        key_algorithm = _children(der, key_info[1], key_info[2])[0]
        self.key = self._algorithm(key_algorithm)
        self.dns: list[str] = []
        self.ips: list[str] = []
        for tag, start, end in items[6:]:
            if tag == 0xA3:  # [3] EXPLICIT extensions
                self._extensions(start, end)

    def _algorithm(self, element: tuple[int, int, int]) -> str:
        _, oid_start, oid_end = _children(self.der, element[1], element[2])[0]
        return _ALGORITHMS.get(_oid(self.der[oid_start:oid_end]), "UNKNOWN")

    def _extensions(self, start: int, end: int) -> None:
        der = self.der
        _, seq_start, seq_end, _ = _read(der, start)
        for _, ext_start, ext_end in _children(der, seq_start, seq_end):
            parts = _children(der, ext_start, ext_end)
            if _oid(der[parts[0][1]:parts[0][2]]) != _SUBJECT_ALT_NAME:
                continue
            _, value_start, value_end = parts[-1]  # the OCTET STRING
            _, names_start, names_end, _ = _read(der, value_start)
            for tag, n_start, n_end in _children(der, names_start, names_end):
                if tag == 0x82:  # dNSName
                    self.dns.append(der[n_start:n_end].decode("ascii", "replace"))
                elif tag == 0x87:  # iPAddress
                    try:
                        self.ips.append(str(ipaddress.ip_address(der[n_start:n_end])))
                    except ValueError:
                        pass

    def common_names(self) -> list[str]:
        return [value for oid, value in self.subject if oid == "2.5.4.3"]


def fields(der: bytes, prefix: str) -> dict[str, str]:
    """The certificate's SSL_CLIENT_* or SSL_SERVER_* variables (prefix SSL_CLIENT or
    SSL_SERVER), as ucspi-ssl's ssl_env.c sets them."""
    cert = Certificate(der)
    env = {f"{prefix}_M_VERSION": str(cert.version), f"{prefix}_M_SERIAL": cert.serial,
           f"{prefix}_S_DN": _oneline(cert.subject)}
    for which, pairs in (("S", cert.subject), ("I", cert.issuer)):
        if which == "I":
            env[f"{prefix}_I_DN"] = _oneline(pairs)
        for oid, value in pairs:
            suffix = _NAMES.get(oid, (None, None))[1]
            if suffix:  # several of a kind: the last, as with ssl_env.c
                env[f"{prefix}_{which}_DN_{suffix}"] = value
    env[f"{prefix}_A_SIG"] = cert.signature
    env[f"{prefix}_A_KEY"] = cert.key
    env[f"{prefix}_V_START"] = cert.not_before
    env[f"{prefix}_V_END"] = cert.not_after
    env[f"{prefix}_CERT"] = ssl.DER_cert_to_PEM_cert(der)
    return env


def names(der: bytes) -> tuple[list[str], list[str], list[str]]:
    """(subjectAltName DNS names, subjectAltName IP addresses, subject CNs)."""
    cert = Certificate(der)
    return cert.dns, cert.ips, cert.common_names()


def matches(der: bytes, host: str) -> bool:
    """Whether the certificate names host: an IP address among its subjectAltName IP
    addresses; a name among its DNS names (a leading `*.` matching one label), or, when it
    has none, its CN. Case does not matter; a trailing dot is ignored."""
    dns, ips, cns = names(der)
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        address = None
    if address is not None:
        return address in ips
    host = host.rstrip(".").lower()
    for pattern in (dns or cns):
        pattern = pattern.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False
