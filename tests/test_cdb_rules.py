"""ucspi.runtime.cdb_rules: rules syntax, data encoding, djb cdb layout, key order, lookups on bad files."""

import io
import ipaddress
import os
import struct

import cdblib
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ucspi.runtime import cdb_make, cdb_rules, exitcodes

ZERO_HASH_KEY = b"2jLaABs"  # djb_hash(ZERO_HASH_KEY) == 0


def write_cdb(path, records):
    with open(path, "wb") as f:
        w = cdb_make.Writer(f)
        for key, data in records:
            w.put(key, data)
        w.finalize()


def compile_text(path, text: bytes):
    with open(path, "wb") as f:
        cdb_rules.compile_rules(io.BytesIO(text), f)


# --- parsing -------------------------------------------------------------------------

GOOD_LINES = [
    (b"1.2.3.4:allow\n", [(b"1.2.3.4", b"")]),
    (b"1.2.3.4:deny\n", [(b"1.2.3.4", b"D\0")]),
    (b":deny", [(b"", b"D\0")]),
    (b"18.23.0.32:deny  \t \n", [(b"18.23.0.32", b"D\0")]),
    (b"10.0.:allow,RELAYCLIENT=\"@fix.me\"\n", [(b"10.0.", b"+RELAYCLIENT=@fix.me\0")]),
    (b"10.0.:allow,RELAYCLIENT=/@fix.me/\n", [(b"10.0.", b"+RELAYCLIENT=@fix.me\0")]),
    (b'127.0.0.1:allow,RELAYCLIENT="",TCPLOCALHOST="movie.edu"',
     [(b"127.0.0.1", b"+RELAYCLIENT=\0+TCPLOCALHOST=movie.edu\0")]),
    (b"x:deny,A=:a:", [(b"x", b"D\0+A=a\0")]),        # the quote may be ':'
    (b"=host.example.com:allow", [(b"=host.example.com", b"")]),
    (b"=.example.com:allow", [(b"=.example.com", b"")]),
    (b"=:allow", [(b"=", b"")]),
    (b"joe@1.2.3.4:allow", [(b"joe@1.2.3.4", b"")]),
    (b"joe@=h.example.com:allow", [(b"joe@=h.example.com", b"")]),
    (b"1.2.3.37-39:allow", [(b"1.2.3.37", b""), (b"1.2.3.38", b""), (b"1.2.3.39", b"")]),
    (b"10.2-3.:deny", [(b"10.2.", b"D\0"), (b"10.3.", b"D\0")]),
    (b"1.2.3.254-300:allow", [(b"1.2.3.254", b""), (b"1.2.3.255", b"")]),  # top capped at 255
    (b"1.2.3.5-3:allow", []),
    (b"1.2.3.-1:allow", [(b"1.2.3.0", b""), (b"1.2.3.1", b"")]),
    (b"1.2.3.18446744073709551617-1:allow", [(b"1.2.3.1", b"")]),  # C's unsigned long wraps
    (b"a@1.2-3:allow", [(b"a@1.2-3", b"")]),                      # no ranges with '@' or '='
    (b"a:allow,=xx", [(b"a", b"+=\0")]),
    (b"a:allow,X==a=", [(b"a", b"+X=a\0")]),
    (b'a:allow,X="a\0b"', [(b"a", b"+X=a\0b\0")]),
]

BAD_LINES = [
    b"1.2.3.4:allow\r\n", b"a:allowx", b"a:denyfoo", b"a:allow,", b"a:allow,X", b"a:allow,X=",
    b'a:allow,X="', b'a:allow,X="a"b', b"a:b:allow", b"x:deny,A=:a:b:", b"1.2.3.x-y:allow",
    b"1a2-3b4:allow", b"1.2.3.4 -5:allow", b"1.2.3.+4-5:allow", b":ALLOW",
    b"::1:allowx", b"2001:db8::1/129:deny", b"joe@2001:db8::/32:deny", b"fe80::1%eth0:deny",
]

SKIPPED_LINES = [b"# comment:deny\n", b"#", b"\n", b"   \t\n", b"no colon here\n", b" #x\n"]


@pytest.mark.parametrize("line, records", GOOD_LINES)
def test_good_line_compiles_to_c_records(line, records):
    assert cdb_rules.parse_line(line) == records


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_line_raises_parse_error_with_trimmed_line(line):
    with pytest.raises(cdb_rules.ParseError) as e:
        cdb_rules.parse_line(line)
    assert e.value.args[0] == line.rstrip(b" \t\n")


@pytest.mark.parametrize("line", SKIPPED_LINES)
def test_comment_blank_and_colonless_lines_are_skipped(line):
    assert cdb_rules.parse_line(line) is None


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_parse_line_returns_records_none_or_parse_error(line):
    try:
        result = cdb_rules.parse_line(line)
    except cdb_rules.ParseError as e:
        assert e.args[0] == line.rstrip(b"\n \t")
        return
    if result is not None:
        for key, data in result:
            assert b"\n" not in key
            assert data == b"" or data.endswith(b"\0")


# --- data encoding -------------------------------------------------------------------

names = st.binary(min_size=1, max_size=10).filter(lambda b: b"=" not in b and b"\0" not in b)
values = st.binary(max_size=10).filter(lambda b: b"\0" not in b)


@given(st.booleans(), st.lists(st.tuples(names, values), max_size=5))
def test_encode_decode_round_trip(deny, env):
    data = cdb_rules.encode_data(deny, env)
    records = cdb_rules.decode_data(data)
    assert records == ([b"D"] if deny else []) + [b"+" + n + b"=" + v for n, v in env]
    rule = cdb_rules.rule_of(b"k", data)
    assert rule.deny == deny
    assert rule.env == [(os.fsdecode(n), os.fsdecode(v)) for n, v in env]


def test_encoding_matches_tcprules_text():
    (records,) = [cdb_rules.parse_line(b'k:deny,A="1",B=/2/')]
    assert records == [(b"k", cdb_rules.encode_data(True, [(b"A", b"1"), (b"B", b"2")]))]


def test_decode_ignores_unterminated_tail_and_rule_ignores_unknown_records():
    assert cdb_rules.decode_data(b"+A=1\0+B=2") == [b"+A=1"]
    rule = cdb_rules.rule_of(b"k", b"X\0+NOEQUALS\0+A=1=2\0D\0+B=\0")
    assert rule == cdb_rules.Rule("k", True, [("A", "1=2"), ("B", "")])


# --- cdb layout ----------------------------------------------------------------------

def test_zero_hash_key_keeps_every_duplicate(tmp_path):
    assert cdblib.djb_hash(ZERO_HASH_KEY) == 0
    path = tmp_path / "z.cdb"
    write_cdb(path, [(ZERO_HASH_KEY, b"first"), (ZERO_HASH_KEY, b"second")])
    assert list(cdblib.Reader(path.read_bytes()).gets(ZERO_HASH_KEY)) == [b"first", b"second"]
    # plain cdblib loses the first one: the reason for cdb_make.Writer
    plain = io.BytesIO()
    w = cdblib.Writer(plain)
    w.put(ZERO_HASH_KEY, b"first")
    w.put(ZERO_HASH_KEY, b"second")
    w.finalize()
    assert list(cdblib.Reader(plain.getvalue()).gets(ZERO_HASH_KEY)) == [b"second"]


@settings(max_examples=100)
@given(st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=40))
def test_writer_equals_cdblib_when_no_key_hashes_to_zero(records):
    ours, plain = io.BytesIO(), io.BytesIO()
    a, b = cdb_make.Writer(ours), cdblib.Writer(plain)
    for key, data in records:
        a.put(key, data)
        b.put(key, data)
    a.finalize()
    b.finalize()
    if all(cdblib.djb_hash(k) for k, _ in records):
        assert ours.getvalue() == plain.getvalue()
    reader = cdblib.Reader(ours.getvalue())
    for key, data in records:
        assert reader.get(key) == next(d for k, d in records if k == key)


# --- key order -----------------------------------------------------------------------

def test_tcp_keys_follow_the_documented_order():
    assert cdb_rules.tcp_keys("1.2.3.4", "a.b.c", "joe") == [
        "joe@1.2.3.4", "joe@=a.b.c", "1.2.3.4", "=a.b.c", "1.2.3.", "1.2.", "1.",
        "=.b.c", "=.c", "=", ""]


def test_tcp_keys_without_host_or_info():
    assert cdb_rules.tcp_keys("10.119.75.38", None, None) == [
        "10.119.75.38", "10.119.75.", "10.119.", "10.", ""]


def test_tcp_keys_empty_host_counts_as_set():
    assert cdb_rules.tcp_keys("1.2", "", None) == ["1.2", "=", "1.", "=", ""]


def test_tcp_keys_ipv6_use_expanded_address_and_bit_prefixes():
    keys = cdb_rules.tcp_keys("2002::1", None, "joe")
    expanded = "2002:0000:0000:0000:0000:0000:0000:0001"
    assert keys[:2] == ["joe@" + expanded, expanded]
    assert keys[-1] == ""
    prefixes = keys[2:-1]
    assert len(prefixes) == 128
    assert prefixes[0] == "^00`00000000000a0" + "0" * 111 + "b"
    assert prefixes[-1] == "^0"
    assert prefixes[-3] == "^00`"


def test_bitstring_counts_one_bits_upward_from_backquote():
    assert cdb_rules._bitstring(b"\xff" * 16, 128) == bytes(range(96, 224))
    assert cdb_rules._bitstring(b"\x20\x02" + bytes(14), 16) == b"00`00000000000a0"


# --- lookups -------------------------------------------------------------------------

MAN_RULES = b"joe@127.0.0.1:first\n18.23.0.32:second\n:third\n127.:fourth\n".replace(
    b"first", b"allow,R=\"first\"").replace(b"second", b"allow,R=\"second\"").replace(
    b"third", b"allow,R=\"third\"").replace(b"fourth", b"allow,R=\"fourth\"")


@pytest.mark.parametrize("ip, info, which", [
    ("10.119.75.38", None, "third"), ("18.23.0.32", None, "second"),
    ("127.0.0.1", "bill", "fourth"), ("127.0.0.1", "joe", "first")])
def test_man_page_examples(tmp_path, ip, info, which):
    path = tmp_path / "rules.cdb"
    compile_text(path, MAN_RULES)
    rule = cdb_rules.lookup(str(path), ip, None, info)
    assert rule.env == [("R", which)] and not rule.deny


def test_first_duplicate_wins_and_deny_is_reported(tmp_path):
    path = tmp_path / "rules.cdb"
    compile_text(path, b"1.2.3.4:deny,X=\"1\"\n1.2.3.4:allow\n=h.example.com:allow\n")
    assert cdb_rules.lookup(str(path), "1.2.3.4", "h.example.com", None) == cdb_rules.Rule(
        "1.2.3.4", True, [("X", "1")])
    assert cdb_rules.lookup(str(path), "9.9.9.9", "h.example.com", None).key == "=h.example.com"
    assert cdb_rules.lookup(str(path), "9.9.9.9", None, None) is None


def test_ipv6_rules_are_found(tmp_path):
    path = tmp_path / "rules.cdb"
    compile_text(path, b"::1:deny\n2001:db8::/32:allow,NET=\"doc\"\njoe@2001:db8::7:allow,WHO=\"joe\"\n")
    assert cdb_rules.lookup(str(path), "::1", None, None).deny
    assert cdb_rules.lookup(str(path), "2001:db8:1::5", None, None).env == [("NET", "doc")]
    assert cdb_rules.lookup(str(path), "2001:0db8::7", None, "joe").env == [("WHO", "joe")]
    assert cdb_rules.lookup(str(path), "2001:db9::1", None, None) is None


def test_missing_cdb_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        cdb_rules.find(str(tmp_path / "nope.cdb"), [""])


def test_directory_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        cdb_rules.find(str(tmp_path), [""])


@pytest.mark.parametrize("content", [b"", b"\xff", b"\0" * 47, b"\xff" * 3000])
def test_short_or_garbage_cdb_is_corrupt(tmp_path, content):
    path = tmp_path / "bad.cdb"
    path.write_bytes(content)
    with pytest.raises(cdb_rules.CorruptRules) as e:
        cdb_rules.find(str(path), [""])
    assert exitcodes.error_str(e.value) == "protocol error"


def test_all_zero_header_means_no_rules(tmp_path):
    path = tmp_path / "zero.cdb"
    path.write_bytes(b"\0" * 3000)
    assert cdb_rules.find(str(path), ["", "1.2.3.4"]) is None


def test_record_pointing_past_the_end_is_corrupt(tmp_path):
    path = tmp_path / "bad.cdb"
    h = cdblib.djb_hash(b"")
    header = bytearray(2048)
    header[(h << 3) & 2047:((h << 3) & 2047) + 8] = struct.pack("<II", 2048, 1)
    path.write_bytes(bytes(header) + struct.pack("<II", h, 9999))
    with pytest.raises(cdb_rules.CorruptRules):
        cdb_rules.find(str(path), [""])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=3000),
                 st.binary(min_size=2048, max_size=2600).map(lambda b: b[:2040] + b"\0" * 8 + b[2048:])))
def test_random_bytes_give_only_documented_outcomes(tmp_path, content):
    path = tmp_path / "random.cdb"
    path.write_bytes(content)
    try:
        rule = cdb_rules.lookup(str(path), "1.2.3.4", "h.example.com", "joe")
    except cdb_rules.CorruptRules:
        return
    assert rule is None or isinstance(rule, cdb_rules.Rule)


# --- IPv6 rules (property) -----------------------------------------------------------

def fehcom_bits(addr: ipaddress.IPv6Address, n: int) -> bytes:
    """ucspi-tcp6's prefix key body, computed independently from the address as an integer."""
    out, ones = bytearray(), 0
    for bit in format(int(addr), "0128b")[:n]:
        if bit == "1":
            out.append(96 + ones)
            ones += 1
        else:
            out.append(ord("0"))
    return bytes(out)


@settings(max_examples=200)
@given(st.ip_addresses(v=6), st.integers(1, 128), st.booleans())
def test_ipv6_prefix_rule_key_and_lookup(addr, prefix, compressed):
    text = (addr.compressed if compressed else addr.exploded).encode()
    assert cdb_rules.parse_line(text + b":deny\n") == [(addr.exploded.upper().encode(), b"D\0")]
    assert cdb_rules.parse_line(b"joe@" + text + b":allow\n") == [
        (b"joe@" + addr.exploded.upper().encode(), b"")]
    ((key, data),) = cdb_rules.parse_line(text + b"/%d:allow,NET=\"x\"" % prefix)
    assert key == b"^" + fehcom_bits(addr, prefix) and data == b"+NET=x\0"
    # every address in that network tries this key
    network = ipaddress.IPv6Network((int(addr) >> (128 - prefix) << (128 - prefix), prefix))
    member = network.broadcast_address
    assert os.fsdecode(key) in cdb_rules.tcp_keys(str(member), None, None)
