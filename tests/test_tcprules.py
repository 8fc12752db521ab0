"""tcprules: cdb bytes identical to C tcprules', C's messages and exit codes, atomic replacement."""

import ipaddress
import os
import re
import resource
import signal

import cdblib
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tests import support

ZERO_HASH_KEY = b"2jLaABs"  # djb_hash(ZERO_HASH_KEY) == 0

# A corpus covering the whole syntax: every address form, comments, ranges, variables,
# odd quote characters, duplicates, blank and colonless lines, trailing blanks.
CORPUS = {
    "man_examples": b"joe@127.0.0.1:first\n18.23.0.32:second\n:third\n127.:fourth\n".replace(
        b"first", b"allow").replace(b"second", b"deny").replace(b"third", b"allow").replace(
        b"fourth", b"deny"),
    "qmail_smtpd": b"127.:allow,RELAYCLIENT=\"\"\n192.168.1.:allow,RELAYCLIENT=\"\"\n:allow\n",
    "deny_default": b"# only the LAN\n10.0.0.:allow\n:deny\n",
    "comments": b"# first\n#second:deny\n1.2.3.4:allow\n  # not a comment, no colon\n#\n",
    "ranges_last_octet": b"1.2.3.37-53:allow\n1.2.3.250-300:deny\n1.2.3.9-3:allow\n",
    "ranges_middle": b"10.2-3.:deny\n10.0-255.:allow,NET=\"ten\"\n172.16-31.:allow\n",
    "ranges_odd": b"-:allow\n1.2.3.-2:deny\n1.2.3.2-:allow\n007-009:allow\n1.2.3.4-5.6-7:allow\n",
    "hosts": b"=mail.example.com:allow\n=.example.com:deny\n=:allow\n=.:deny\n",
    "info": b"joe@1.2.3.4:allow\njoe@=h.example.com:deny\nbob@=:allow\n@1.2.3.4:deny\n",
    "variables": b'127.0.0.1:allow,RELAYCLIENT="",TCPLOCALHOST="movie.edu",X="1",Y="2"\n'
                 b"1.:deny,REASON=\"blocked\"\n",
    "odd_quotes": b"a:allow,A=/x/,B=::,C=xyx,D='q',E=\"\",F=,,,G==v=\n"
                  b"b:allow,H=\x01v\x01,I=\xffv\xff,J= x ,K=\"\"\n",
    "duplicates": b"1.2.3.4:allow\n1.2.3.4:deny\n1.2.3.4:allow,X=\"3\"\n:deny\n:allow\n"
                  + ZERO_HASH_KEY + b":allow\n" + ZERO_HASH_KEY + b":deny\n",
    "blank_and_whitespace": b"\n\n1.2.3.4:allow   \n\t\n5.6.7.8:deny\t \t\n   \n:allow",
    "no_final_newline": b"1.2.3.4:deny,X=\"y\"",
    "empty": b"",
    "only_comments": b"# nothing\n# at all\n",
    "binary_bytes": b"\xff\xfe:allow,V=\"\x80\x81\"\nkey with spaces:deny\n\x00nul:allow\n",
    "values_with_colons": b"1.2.3.4:allow,TCPREMOTEHOST=\"a:b:c\",X=|:deny|\n",
    "many_rules": b"".join(b"10.%d.%d.:allow,N=\"%d\"\n" % (i // 256, i % 256, i) for i in range(3000))
                  + b"10.0-40.7-9:deny\n:deny\n",
    "long_line": b"1.2.3.4:allow,BIG=\"" + b"x" * 100000 + b"\"\n",
}

# Lines C accepts or rejects in particular ways (found by running C tcprules).
EDGE_CASES = [
    b"1.2.3.4:allow\r\n", b"a:allowx  \t\n", b"a:allowx\x00yz\n", b"\x00a:allowx\n", b"a:allow,",
    b"a:allow,X", b"a:allow,X=", b'a:allow,X="', b'a:allow,X="a"b', b"a:b:allow", b"1.2.3.x-y:allow",
    b"1a2-3b4:allow", b"1.2.3.4 -5:allow", b"1.2.3.4- 5:allow", b"1.2.3.+4-5:allow",
    b"1.2.3.4-5 :allow", b"1.2.3.18446744073709551617-1:allow", b"4294967297-1:allow",
    b"1.2.3.99999999999999999999-1:allow", b"a\xff:allowx", b":ALLOW", b" :allow", b"a: allow",
    b"1.2.3.4:allow\n1.2.3.4:nope\n", b"1.2.3.4-5678:allow\n1.2.3.4-5:allow\n",
    b"1.2.3.36893488147419103233-2:allow", b"1.2.3." + b"9" * 5000 + b"-3:allow",
    b"1.2.3.1-" + b"9" * 5000 + b":allow", b"::1/" + b"9" * 5000 + b":allow",
]


def run_tcprules(tool, directory, text, cdb="rules.cdb", tmp="rules.tmp"):
    """(exit code, stderr, cdb bytes or None, tmp left behind) of tool in directory."""
    directory.mkdir(exist_ok=True)
    r = support.run([tool, cdb, tmp], input=text, cwd=directory)
    path = directory / cdb
    return r.returncode, r.stderr, path.read_bytes() if path.exists() else None, (directory / tmp).exists()


def outcomes(tmp_path, text):
    c = run_tcprules(support.c_tool("tcprules"), tmp_path / "c", text)
    ours = run_tcprules(support.prog("tcprules"), tmp_path / "ours", text)
    return c, ours


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_cdb_is_byte_identical_to_c(tmp_path, name):
    c, ours = outcomes(tmp_path, CORPUS[name])
    assert c[0] == 0, c[1]
    assert ours[:3] == c[:3]
    assert not ours[3]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_case_matches_c_message_exit_code_and_cdb(tmp_path, text):
    c, ours = outcomes(tmp_path, text)
    assert ours[:3] == c[:3]
    assert not ours[3]


def test_parse_error_message_and_exit_code(tmp_path):
    code, err, cdb, tmp_left = run_tcprules(support.prog("tcprules"), tmp_path, b"1.2.3.4:allow\nx:permit\n")
    assert (code, err) == (100, b"tcprules: fatal: unable to parse this line: x:permit\n")
    assert cdb is None and not tmp_left


def test_parse_error_leaves_old_cdb_untouched_and_removes_tmp(tmp_path):
    assert run_tcprules(support.prog("tcprules"), tmp_path, b":allow\n")[0] == 0
    cdb = tmp_path / "rules.cdb"
    before, inode = cdb.read_bytes(), cdb.stat().st_ino
    code, _, after, tmp_left = run_tcprules(support.prog("tcprules"), tmp_path, b":deny\n1.2.3.4:bogus\n")
    assert code == 100
    assert after == before and cdb.stat().st_ino == inode
    assert not tmp_left


def test_c_leaves_tmp_behind_on_parse_error_ours_does_not(tmp_path):
    c, ours = outcomes(tmp_path, b"x:bogus\n")
    assert c[0] == ours[0] == 100
    assert c[3] and not ours[3]


def test_existing_tmp_is_destroyed_and_cdb_replaced(tmp_path):
    (tmp_path / "rules.tmp").write_bytes(b"junk")
    code, _, cdb, tmp_left = run_tcprules(support.prog("tcprules"), tmp_path, b":deny\n")
    assert code == 0 and not tmp_left
    assert list(cdblib.Reader(cdb).iteritems()) == [(b"", b"D\0")]


def test_new_cdb_gets_a_new_inode(tmp_path):
    run_tcprules(support.prog("tcprules"), tmp_path, b":allow\n")
    inode = (tmp_path / "rules.cdb").stat().st_ino
    run_tcprules(support.prog("tcprules"), tmp_path, b":deny\n")
    assert (tmp_path / "rules.cdb").stat().st_ino != inode  # renamed over, never rewritten in place


def test_usage(tmp_path):
    for argv in ([], ["only.cdb"]):
        c = support.run([support.c_tool("tcprules"), *argv], input=b"", cwd=tmp_path)
        ours = support.run([support.prog("tcprules"), *argv], input=b"", cwd=tmp_path)
        assert (ours.returncode, ours.stderr) == (c.returncode, c.stderr) == (
            100, b"tcprules: usage: tcprules rules.cdb rules.tmp\n")


def test_cannot_create_tmp_matches_c(tmp_path):
    c, ours = outcomes(tmp_path, b":allow\n")  # make the directories
    for tool, d in ((support.c_tool("tcprules"), tmp_path / "c"), (support.prog("tcprules"), tmp_path / "ours")):
        r = support.run([tool, "rules.cdb", "missing/rules.tmp"], input=b":deny\n", cwd=d)
        assert (r.returncode, r.stderr) == (
            111, b"tcprules: fatal: unable to create missing/rules.tmp: file does not exist\n")
        assert cdblib.Reader((d / "rules.cdb").read_bytes()).get(b"") == b""


def test_cannot_move_tmp_onto_cdb_matches_c(tmp_path):
    results = []
    for tool, d in ((support.c_tool("tcprules"), tmp_path / "c"), (support.prog("tcprules"), tmp_path / "ours")):
        (d / "rules.cdb").mkdir(parents=True)
        r = support.run([tool, "rules.cdb", "rules.tmp"], input=b":deny\n", cwd=d)
        results.append((r.returncode, r.stderr, (d / "rules.cdb").is_dir()))
    assert results[0] == results[1] == (
        111, b"tcprules: fatal: unable to move rules.tmp to rules.cdb: is a directory\n", True)


def test_unreadable_input_matches_c(tmp_path):
    results = []
    for tool, d in ((support.c_tool("tcprules"), tmp_path / "c"), (support.prog("tcprules"), tmp_path / "ours")):
        d.mkdir()
        with open(d / "writeonly", "wb") as stdin:  # reading a write-only descriptor fails (EBADF)
            r = support.run([tool, "rules.cdb", "rules.tmp"], stdin=stdin, input=None, cwd=d)
        results.append((r.returncode, r.stderr, (d / "rules.cdb").exists()))
    assert results[0] == results[1] == (111, b"tcprules: fatal: unable to read input: file descriptor not open\n", False)


def test_closed_stdin_matches_c(tmp_path):
    results = []
    for tool, d in ((support.c_tool("tcprules"), tmp_path / "c"), (support.prog("tcprules"), tmp_path / "ours")):
        d.mkdir()
        r = support.run([tool, "rules.cdb", "rules.tmp"], cwd=d, preexec_fn=lambda: os.close(0))
        results.append((r.returncode, r.stderr, (d / "rules.cdb").exists()))
    assert results[0] == results[1] == (111, b"tcprules: fatal: unable to read input: file descriptor not open\n", False)
    assert not (tmp_path / "ours" / "rules.tmp").exists()


def _small_file_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_write_failure_matches_c_and_leaves_cdb_alone(tmp_path):
    text = b"".join(b"1.2.3.%d:allow,X=\"%s\"\n" % (i % 256, b"y" * 50) for i in range(500))
    results = []
    for tool, d in ((support.c_tool("tcprules"), tmp_path / "c"), (support.prog("tcprules"), tmp_path / "ours")):
        d.mkdir()
        (d / "rules.cdb").write_bytes(b"old")
        r = support.run([tool, "rules.cdb", "rules.tmp"], input=text, cwd=d, preexec_fn=_small_file_limit)
        results.append((r.returncode, r.stderr, (d / "rules.cdb").read_bytes()))
    assert results[0] == results[1] == (111, b"tcprules: fatal: unable to write to rules.tmp: file too big\n", b"old")
    assert not (tmp_path / "ours" / "rules.tmp").exists()


def test_ipv6_lines_rejected_by_c_are_compiled_with_fehcom_keys(tmp_path):
    text = b"::1:deny\njoe@2001:db8::7:allow\n2001:db8::/32:allow,NET=\"doc\"\n"
    c_code = run_tcprules(support.c_tool("tcprules"), tmp_path / "c", text)[0]
    code, err, cdb, _ = run_tcprules(support.prog("tcprules"), tmp_path / "ours", text)
    assert c_code == 100 and code == 0, err
    assert list(cdblib.Reader(cdb).iteritems()) == [
        (b"0000:0000:0000:0000:0000:0000:0000:0001", b"D\0"),
        (b"joe@2001:0DB8:0000:0000:0000:0000:0000:0007", b""),
        (b"^00`000000000000a0000bc0de0fgh000", b"+NET=doc\0")]


# --- random rules text against C ------------------------------------------------------

def looks_like_ipv6_rule(line: bytes) -> bool:
    """Whether a line could be one of our IPv6 extension's rules (C rejects all of them)."""
    for m in re.finditer(rb":(?=allow|deny)", line):
        address = line[:m.start()].rsplit(b"@", 1)[-1].split(b"/", 1)[0]
        try:
            ipaddress.IPv6Address(address.decode("ascii"))
            return True
        except (ValueError, UnicodeDecodeError):
            continue
    return False


address_part = st.one_of(
    st.from_regex(rb"\A[0-9]{1,3}(\.[0-9]{0,3}){0,3}(-[0-9]{0,4}(\.[0-9]{0,3})?)?\.?\Z"),
    st.from_regex(rb"\A=?[a-z.]{0,8}\Z"),
    st.from_regex(rb"\A[a-z]{1,4}@=?[0-9a-z.:]{0,8}\Z"),
    st.binary(max_size=8),
)


def mostly(good, bad, percent_good=75):
    """good in about percent_good% of the draws, bad otherwise."""
    return st.integers(0, 99).flatmap(lambda n: good if n < percent_good else bad)


good_instructions = st.from_regex(
    rb"\A(allow|deny)(,[A-Z]{0,3}=(\"[^\"\n]{0,4}\"|/[a-z:]{0,3}/|:[a-z]{0,2}:|,,|==|##))*\Z")
instruction_part = mostly(good_instructions, st.one_of(
    st.from_regex(rb"\A(allow|deny|al|den)[ -~]{0,10}\Z"),
    st.binary(max_size=10),
), 80)
structured_line = st.builds(lambda a, i, end: a + b":" + i + end, address_part, instruction_part,
                            st.sampled_from([b"\n", b"\n", b" \n", b"\t\n", b"\r\n", b""]))
rule_line = mostly(structured_line, st.one_of(
    st.sampled_from([b"\n", b"# comment:deny\n", b"no colon\n", b"  \n"]),
    st.binary(max_size=20),
), 85)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rule_line, max_size=6).map(lambda lines: b"".join(
    line if line.endswith(b"\n") or i == len(lines) - 1 else line + b"\n" for i, line in enumerate(lines))))
def test_random_rules_text_gives_c_identical_cdb_or_failure(tmp_path_factory, text):
    assume(not any(looks_like_ipv6_rule(line) for line in text.split(b"\n")))
    c, ours = outcomes(tmp_path_factory.mktemp("random"), text)
    assert ours[:3] == c[:3]
    assert not ours[3]
