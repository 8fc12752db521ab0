"""qmail-newrcpt and recipient validation: control/validrcptto -> validrcptto.cdb, and
qmail-smtpd refusing unknown local users at RCPT with 550."""

import cdblib
import pytest
from hypothesis import given, strategies as st

from qmail.mailin import smtp_validrcpt
from tests import support
from tests.test_qmail_smtpd import replies, session, smtpd_env, tree, queued  # noqa: F401 (fixture)

NO_MAILBOX = b"550 sorry, no mailbox here by that name. (#5.1.1)"
LIST = b"""# who exists
Joe@Example.COM
list-default@example.com
@catchall.example
postmaster@example.com  \t
"""


def newrcpt(root):
    return support.run([support.prog("qmail-newrcpt")], env=support.suite_env(QMAIL_ROOT=root))


def test_list_compiles_to_lower_cased_entries_and_their_domains(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "validrcptto").write_bytes(LIST)
    result = newrcpt(tmp_path)
    assert result.returncode == 0 and result.stderr == b""
    reader = cdblib.Reader((tmp_path / "control" / "validrcptto.cdb").read_bytes())
    assert list(reader.keys()) == [b"joe@example.com", b"list-default@example.com", b"@catchall.example",
                                   b"postmaster@example.com", b"example.com", b"catchall.example"]


def test_line_without_domain_is_fatal_and_keeps_the_old_cdb(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "validrcptto").write_bytes(b"ok@example.com\njustauser\n")
    (tmp_path / "control" / "validrcptto.cdb").write_bytes(b"old")
    result = newrcpt(tmp_path)
    assert result.returncode == 111
    assert result.stderr == b"qmail-newrcpt: fatal: unable to parse control/validrcptto line 2: justauser\n"
    assert (tmp_path / "control" / "validrcptto.cdb").read_bytes() == b"old"


def test_missing_list_is_fatal_111(tmp_path):
    (tmp_path / "control").mkdir()
    result = newrcpt(tmp_path)
    assert result.returncode == 111
    assert result.stderr == b"qmail-newrcpt: fatal: unable to read control/validrcptto: file does not exist\n"


@pytest.mark.parametrize("rcpt, reply", [
    (b"joe@example.com", b"250 ok"), (b"JOE@EXAMPLE.com", b"250 ok"),
    (b"jane@example.com", NO_MAILBOX), (b"list-announce@example.com", b"250 ok"),
    (b"list-a-b@example.com", b"250 ok"), (b"list@example.com", NO_MAILBOX),
    (b"anyone@catchall.example", b"250 ok"), (b"someone@unlisted.example", b"250 ok"),
])
def test_smtpd_refuses_unknown_users_at_listed_domains(tree, rcpt, reply):
    (tree / "control" / "validrcptto").write_bytes(LIST)
    (tree / "control" / "rcpthosts").unlink()
    assert newrcpt(tree).returncode == 0
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<" + rcpt + b">"]))
    assert lines[-1] == reply


def test_refused_recipient_is_not_queued_and_others_are(tree):
    (tree / "control" / "validrcptto").write_bytes(b"demo@mx.example.org\n")
    assert newrcpt(tree).returncode == 0
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<nobody@mx.example.org>",
                                   b"RCPT TO:<demo@mx.example.org>", b"DATA", b"x", b"."]))
    assert lines[2:4] == [NO_MAILBOX, b"250 ok"]
    assert queued(tree)[0][1].endswith(b"Fa@b\0Tdemo@mx.example.org\0")


def test_without_the_cdb_nobody_is_refused(tree):
    lines = replies(session(tree, [b"MAIL FROM:<a@b>", b"RCPT TO:<nobody@mx.example.org>"]))
    assert lines[-1] == b"250 ok"


def test_smtp_size_extension(tree):
    (tree / "control" / "databytes").write_text("1000\n")
    lines = replies(session(tree, [b"EHLO x", b"MAIL FROM:<a@b> SIZE=1001", b"MAIL FROM:<a@b> size=1000"],
                            SMTPSIZE="1"))
    assert lines[1:5] == [b"250-mx.example.org", b"250-PIPELINING", b"250-8BITMIME", b"250 SIZE 1000"]
    assert lines[5:] == [b"552 sorry, that message size exceeds my databytes limit (#5.3.4)", b"250 ok"]
    lines = replies(session(tree, [b"MAIL FROM:<a@b> SIZE=1001"]))  # off: 1.03 ignores SIZE
    assert lines[-1] == b"250 ok"


@given(st.lists(st.from_regex(r"[a-z0-9.+-]{0,8}@[a-z0-9.-]{1,8}", fullmatch=True), max_size=10))
def test_every_listed_address_is_accepted(addresses):
    keys = set(smtp_validrcpt.compile_keys("\n".join(addresses).encode()))
    for address in addresses:
        domain, candidates = smtp_validrcpt.candidate_keys(address)
        assert domain in keys and any(k in keys for k in candidates)


@given(st.text(alphabet="ab-", max_size=10), st.text(alphabet="ab-", max_size=6))
def test_default_entries_match_only_extensions(base, ext):
    keys = set(smtp_validrcpt.compile_keys(f"{base}-default@d.example".encode()))
    _, candidates = smtp_validrcpt.candidate_keys(f"{base}-{ext}@d.example")
    assert any(k in keys for k in candidates)
    _, candidates = smtp_validrcpt.candidate_keys(f"{base}@d.example")
    assert not any(k in keys for k in candidates)
