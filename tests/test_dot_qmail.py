"""qmail/delivery/dot_qmail.py: the lookup lists, the EXT/HOST fields, the line parser."""

from hypothesis import given, strategies as st

from qmail.delivery import dot_qmail
from qmail.delivery.dot_qmail import Instruction


def names(dash, ext):
    return [(n.decode(), None if d is None else d.decode())
            for n, d in dot_qmail.candidates(dash.encode(), ext.encode())]


def test_lookup_list_without_extension_is_dot_qmail():
    assert names("", "")[0] == (".qmail", None)


def test_lookup_list_for_one_level_extension():
    assert names("-", "a") == [(".qmail-a", None), (".qmail-default", "a")]


def test_lookup_list_for_trailing_dash():
    assert names("-", "a-") == [(".qmail-a-", None), (".qmail-a-default", ""),
                                (".qmail-default", "a-")]


def test_lookup_list_for_three_levels_most_specific_first():
    assert names("-", "a-b-c") == [(".qmail-a-b-c", None), (".qmail-a-b-default", "c"),
                                   (".qmail-a-default", "b-c"), (".qmail-default", "a-b-c")]


def test_lookup_list_lowercases_and_turns_dots_into_colons_but_default_keeps_case():
    assert names("-", "Jo.E-X") == [(".qmail-jo:e-x", None), (".qmail-jo:e-default", "X"),
                                   (".qmail-default", "Jo.E-X")]


def test_exact_name_ending_in_default_sets_default():
    assert names("-", "xdefault")[0] == (".qmail-xdefault", "default")


def test_extension_fields():
    assert dot_qmail.extension_fields(b"a-b-c-d-e") == (b"a-b-c-d-e", b"b-c-d-e", b"c-d-e", b"d-e")
    assert dot_qmail.extension_fields(b"a") == (b"a", b"", b"", b"")
    assert dot_qmail.extension_fields(b"") == (b"", b"", b"", b"")


def test_host_fields():
    assert dot_qmail.host_fields(b"a.b.c.d.e") == (b"a.b.c.d", b"a.b.c", b"a.b")
    assert dot_qmail.host_fields(b"a.b") == (b"a", b"a", b"a")
    assert dot_qmail.host_fields(b"localhost") == (b"localhost",) * 3


def test_parse_every_kind_of_line():
    text = b"# c\n./Mbox\n/abs/Maildir/\n|prog arg\n&fw@x\nbare@x\n+list\n+other\n\n./Last \t\n"
    assert dot_qmail.parse(text) == [
        Instruction("mbox", b"./Mbox"), Instruction("maildir", b"/abs/Maildir/"),
        Instruction("program", b"prog arg"), Instruction("forward", b"fw@x"),
        Instruction("forward", b"bare@x"), Instruction("list", b""),
        Instruction("mbox", b"./Last")]


def test_parse_last_line_without_newline():
    assert dot_qmail.parse(b"./Mbox") == [Instruction("mbox", b"./Mbox")]


def test_parse_blank_first_line_raises():
    for text in (b"\n./Mbox\n", b" \t\n", b""):
        try:
            dot_qmail.parse(text)
        except dot_qmail.FirstLineBlank:
            continue
        raise AssertionError(f"{text!r} accepted")


def test_safe_ext_has_no_dots():
    assert dot_qmail.safe_ext(b"../../ETC") == b"::/::/etc"


@given(st.binary(max_size=300))
def test_parse_any_text_gives_only_known_kinds(text):
    try:
        instructions = dot_qmail.parse(text)
    except dot_qmail.FirstLineBlank:
        assert text.split(b"\n", 1)[0].strip(b" \t") == b""
        return
    for ins in instructions:
        assert ins.kind in ("maildir", "mbox", "program", "forward", "list")
        assert b"\n" not in ins.target
        assert not ins.target.endswith((b" ", b"\t"))
        if ins.kind in ("maildir", "mbox"):
            assert ins.target[:1] in (b".", b"/")
            assert (ins.kind == "maildir") == ins.target.endswith(b"/")


@given(st.sampled_from(["", "-"]), st.text(alphabet="ab.-D/", max_size=12))
def test_candidates_never_contain_dotdot_and_default_rebuilds_the_extension(dash, ext):
    raw = ext.encode()
    listed = dot_qmail.candidates(dash.encode(), raw)
    prefix = b".qmail" + dash.encode()
    for name, default in listed:
        assert name.startswith(prefix)
        assert b"." not in name[len(prefix):]
        if default is not None:
            assert raw.endswith(default)
            stem = name[len(prefix):]
            assert stem.endswith(b"default")
            assert stem[:-7] == dot_qmail.safe_ext(raw[:len(raw) - len(default)])
    assert listed[-1][0] == prefix + b"default"
