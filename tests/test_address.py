"""qmail/formats/address.py: header fields and addresses tokenised, rewritten and folded as qmail's
token822/headerbody/hfield/quote code does."""

from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from qmail.formats import address
from qmail.formats.address import AT, ATOM, COLON, COMMA, COMMENT, DOT, LEFT, LITERAL, QUOTE, RIGHT, SEMI


@pytest.mark.parametrize("text, tokens", [
    (b"joe@host", [(ATOM, b"joe"), (AT, b""), (ATOM, b"host")]),
    (b" joe . x @ a.b ", [(ATOM, b"joe"), (DOT, b""), (ATOM, b"x"), (AT, b""), (ATOM, b"a"),
                          (DOT, b""), (ATOM, b"b")]),
    (b'"Joe Q" <j@h>', [(QUOTE, b"Joe Q"), (LEFT, b""), (ATOM, b"j"), (AT, b""), (ATOM, b"h"),
                        (RIGHT, b"")]),
    (b"j@[1.2.3.4]", [(ATOM, b"j"), (AT, b""), (LITERAL, b"1.2.3.4")]),
    (b"(a (nested) c)", [(COMMENT, b"a nested c")]),  # inner parentheses are dropped
    (b'"a\\"b"', [(QUOTE, b'a"b')]),
    (b"a\\ b", [(ATOM, b"a b")]),  # an escaped space stays in the atom
    (b"a)b", [(QUOTE, b"a)b")]),  # an atom that cannot be written as one becomes a quote
    (b"g: a, b;", [(ATOM, b"g"), (COLON, b""), (ATOM, b"a"), (COMMA, b""), (ATOM, b"b"),
                   (SEMI, b"")]),
    (b"caf\xc3\xa9", [(QUOTE, b"caf\xc3\xa9")]),
    (b"", []),
])
def test_tokenise_makes_qmails_tokens(text, tokens):
    assert address.tokenise(text) == tokens


@pytest.mark.parametrize("text", [b")", b"]", b"(unclosed", b'"unclosed', b"[1.2.3", b'"a\\',
                                  b"(a\\"])
def test_tokenise_refuses_unbalanced_text(text):
    with pytest.raises(address.Unparseable):
        address.tokenise(text)


def identity(addr):
    return addr


@pytest.mark.parametrize("field, expected", [
    (b"To: joe@host\n", b"To: joe@host\n"),
    (b"To:joe@host,bob@host\n", b"To: joe@host, bob@host\n"),
    (b"To: a b\n", b"To: a, b\n"),  # adjacent addresses get their comma
    (b'To: "Joe" <joe@host> (work)\n', b'To: "Joe" <joe@host>(work)\n'),  # as qmail spaces it
    (b"To: group: a, b;, c\n", b"To: group: a, b;, c\n"),
    (b"To: <@route,@r2:joe@host>\n", b"To: <@route, @r2: joe@host>\n"),
    (b"To: <>\n", b"To: <>\n"),
])
def test_address_list_passes_structure_through(field, expected):
    assert address.unparse(address.address_list(address.tokenise(field), identity)) == expected


def test_address_list_hands_each_address_reversed():
    seen = []

    def record(addr):
        seen.append(address.unquote(list(reversed(addr))))
        return addr
    address.address_list(address.tokenise(b'To: a@b, "C" <c@d>, (x) e, <>\n'), record)
    assert seen == [b"", b"e", b"c@d", b"a@b"]  # right to left, <> included


@pytest.mark.parametrize("field", [b"To: a;;\n", b"To: g: a\n", b"To: a, g: b\n", b"To: a>\n"])
def test_address_list_refuses_bad_groups_and_brackets(field):
    with pytest.raises(address.Unparseable):
        address.address_list(address.tokenise(field), identity)


def test_unparse_folds_after_commas_past_80_columns():
    names = b", ".join(b"user%02d@example.com" % i for i in range(8))
    out = address.unparse(address.address_list(address.tokenise(b"To: " + names + b"\n"), identity))
    lines = out.split(b"\n")
    assert out.endswith(b"\n")
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].startswith(b"  user")  # continuation lines start with two spaces
    assert b"".join(out.split()) == b"".join((b"To: " + names).split())


def test_unparse_escapes_specials_inside_words():
    assert address.unparse([(QUOTE, b'a"b\\c')]) == b'"a\\"b\\\\c"\n'
    assert address.unparse([(COMMENT, b"x(y)")]) == b"(x\\(y\\))\n"


def test_unquote_drops_comments_and_keeps_literals():
    assert address.unquote(address.tokenise(b'"j q"(c)@[1.2.3.4]')) == b"j q@[1.2.3.4]"


@pytest.mark.parametrize("box, quoted", [
    (b"joe", b"joe"), (b"j.q", b"j.q"), (b"", b'""'), (b"j q", b'"j q"'), (b".j", b'".j"'),
    (b"j.", b'"j."'), (b"j..q", b'"j..q"'), (b'a"b', b'"a\\"b"'), (b"\xe9", b'"\xe9"'),
])
def test_quote_only_when_needed(box, quoted):
    assert address.quote(box) == quoted


def test_quote2_quotes_the_local_part_only():
    assert address.quote2(b"j q@x y") == b'"j q"@x y'
    assert address.quote2(b"a@b@c") == b'"a@b"@c'
    assert address.quote2(b"") == b""


@pytest.mark.parametrize("field, name", [
    (b"To: x\n", "to"), (b"TO : x\n", "to"), (b"resent-BCC:\n", "resent-bcc"),
    (b"Resent_To: x\n", None), (b"Toast: x\n", None), (b"X-To: x\n", None),
    (b"Mail-Followup-To: x\n", "mail-followup-to"),
])
def test_field_known_matches_names_case_insensitively(field, name):
    assert address.field_known(field) == name


@pytest.mark.parametrize("field, valid", [
    (b"X-A: b\n", True), (b"X-A \t: b\n", True), (b": b\n", False), (b"X A: b\n", False),
    (b"no colon\n", False), (b"\xe9: b\n", False),
])
def test_field_valid(field, valid):
    assert address.field_valid(field) == valid


def events(data: bytes):
    return list(address.split_header(data.splitlines(keepends=True)))


def test_split_header_joins_continuations_and_keeps_the_blank_line():
    assert events(b"A: 1\n 2\nB: 3\n\nbody\n") == [
        ("field", b"A: 1\n 2\n"), ("field", b"B: 3\n"), ("end", b""), ("body", b"\n"),
        ("body", b"body\n")]


def test_split_header_turns_from_lines_into_mbox_line_fields():
    assert events(b"From joe Tue\nA: 1\n")[0] == ("field", b"MBOX-Line: From joe Tue\n")


def test_split_header_inserts_a_blank_line_before_a_body_without_one():
    assert events(b"A: 1\nnot a field\nmore") == [
        ("field", b"A: 1\n"), ("end", b""), ("body", b"\n"), ("body", b"not a field\n"),
        ("body", b"more\n")]


def test_split_header_without_body():
    assert events(b"A: 1") == [("field", b"A: 1\n"), ("end", b"")]
    assert events(b"") == [("end", b"")]


def test_message_id_format():
    assert address.format_message_id(b"h.x", 42, 86400 * 365) == \
        b"<19710101000000.42.qmail@h.x>"


field_bytes = st.binary(max_size=200)
printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@settings(max_examples=300, deadline=None)
@given(field_bytes)
def test_tokenise_never_crashes(data):
    try:
        address.tokenise(data)
    except address.Unparseable:
        pass


@settings(max_examples=300, deadline=None)
@given(printable)
def test_unparse_then_tokenise_gives_the_same_tokens(text):
    """What unparse writes reads back as the tokens it was made from."""
    try:
        tokens = address.tokenise(text.encode())
    except address.Unparseable:
        return
    # an atom made with backslashes (empty, or holding a blank or special) is written raw
    # by qmail too: it cannot read back as one atom
    if any(kind == ATOM and (not t or any(c in b' \t\r\n(["<>;:@,.' for c in t))
           for kind, t in tokens):
        return
    assert address.tokenise(address.unparse(tokens)) == tokens


@settings(max_examples=300, deadline=None)
@given(printable)
def test_address_list_never_crashes_and_identity_keeps_addresses(text):
    field = b"To: " + text.encode() + b"\n"
    try:
        tokens = address.tokenise(field)
        out = address.address_list(tokens, identity)
    except address.Unparseable:
        return
    # qmail may move a comment past the address it sits in, and adds commas; nothing else
    assert Counter(t for t in out if t[0] != COMMA) == Counter(t for t in tokens if t[0] != COMMA)
    addresses = [t for t in tokens if t[0] not in (COMMA, COMMENT)]
    assert [t for t in out if t[0] not in (COMMA, COMMENT)] == addresses
    address.unparse(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_quote_round_trips_through_tokenise(box):
    quoted = address.quote(box)
    tokens = address.tokenise(quoted)
    assert address.unquote(tokens) == box


def test_split_header_joins_long_header_lines_and_passes_long_body_lines_through():
    pieces = [b"A: " + b"x" * 10, b"y" * 10 + b"\n", b"\n", b"z" * 5, b"z" * 5, b"\n", b"end"]
    assert list(address.split_header(pieces)) == [
        ("field", b"A: " + b"x" * 10 + b"y" * 10 + b"\n"), ("end", b""), ("body", b"\n"),
        ("body", b"z" * 5), ("body", b"z" * 5), ("body", b"\n"), ("body", b"end\n")]


def test_split_header_last_header_line_without_newline_in_pieces():
    assert list(address.split_header([b"A: 1\n", b"B", b": 2"])) == [
        ("field", b"A: 1\n"), ("field", b"B: 2\n"), ("end", b"")]
    assert list(address.split_header([b"A: 1\n", b"bo", b"dy"])) == [
        ("field", b"A: 1\n"), ("end", b""), ("body", b"\n"), ("body", b"body\n")]
