"""qmail/queue/routing.py: local/remote decision and rewriting as qmail-send's rewrite()."""

import pytest
from hypothesis import given, strategies as st

from qmail.queue import routing
from qmail.queue.routing import LOCAL, REMOTE


def routes(locals_=("example.com",), percenthack=(), virtualdomains=(), envnoathost="example.com"):
    return routing.Routes.from_lists(envnoathost, list(locals_), list(percenthack),
                                     list(virtualdomains))


@pytest.mark.parametrize("recip, expected", [
    ("joe@example.com", (LOCAL, "joe@example.com")),
    ("joe@EXAMPLE.Com", (LOCAL, "joe@EXAMPLE.Com")),  # constmap ignores ASCII case
    ("joe@example.org", (REMOTE, "joe@example.org")),
    ("joe", (LOCAL, "joe@example.com")),  # envnoathost
    ("", (LOCAL, "@example.com")),
    ("a@b@example.com", (LOCAL, "a@b@example.com")),  # the last @ decides
    ("joe@sub.example.com", (REMOTE, "joe@sub.example.com")),  # locals is exact
])
def test_locals_and_envnoathost(recip, expected):
    assert routes().rewrite(recip) == expected


def test_address_without_at_takes_envnoathost_which_may_be_remote():
    assert routes(envnoathost="elsewhere.net").rewrite("joe") == (REMOTE, "joe@elsewhere.net")


VDOMS = ["virt.example.net:vuser", "joe@virt.example.net:joeuser", ".wild.org:wild",
         "except.wild.org:", "Mixed.Case:mc", "nocolon.example"]


@pytest.mark.parametrize("recip, expected", [
    ("sue@virt.example.net", (LOCAL, "vuser-sue@virt.example.net")),
    ("joe@virt.example.net", (LOCAL, "joeuser-joe@virt.example.net")),  # user@domain first
    ("x@a.wild.org", (LOCAL, "wild-x@a.wild.org")),  # .suffix
    ("x@a.b.wild.org", (LOCAL, "wild-x@a.b.wild.org")),
    ("x@wild.org", (REMOTE, "x@wild.org")),  # .wild.org does not match wild.org itself
    ("x@except.wild.org", (REMOTE, "x@except.wild.org")),  # empty prepend: an exception
    ("x@sub.except.wild.org", (LOCAL, "wild-x@sub.except.wild.org")),  # longest match only
    ("x@mixed.CASE", (LOCAL, "mc-x@mixed.CASE")),
    ("x@nocolon.example", (REMOTE, "x@nocolon.example")),  # a line without : is ignored
])
def test_virtualdomains_most_specific_entry_wins(recip, expected):
    assert routes(virtualdomains=VDOMS).rewrite(recip) == expected


def test_locals_beat_virtualdomains():
    r = routes(locals_=["virt.example.net"], virtualdomains=VDOMS)
    assert r.rewrite("sue@virt.example.net") == (LOCAL, "sue@virt.example.net")


def test_catch_all_virtualdomain_and_its_exceptions():
    r = routes(virtualdomains=[":alias-catchall", "keep.example:"])
    assert r.rewrite("a@any.where") == (LOCAL, "alias-catchall-a@any.where")
    assert r.rewrite("a@keep.example") == (REMOTE, "a@keep.example")


def test_last_duplicate_virtualdomain_wins():
    r = routes(virtualdomains=["d.example:first", "D.example:second"])
    assert r.rewrite("a@d.example") == (LOCAL, "second-a@d.example")


def test_percenthack_turns_the_last_percent_into_the_at_repeatedly():
    r = routes(percenthack=["relay.example"], locals_=["example.com"])
    assert r.rewrite("joe%example.com@relay.example") == (LOCAL, "joe@example.com")
    r2 = routes(percenthack=["relay.example", "hop.example"])
    assert r2.rewrite("a%far.org%hop.example@relay.example") == (REMOTE, "a@far.org")
    assert r2.rewrite("nopercent@relay.example") == (REMOTE, "nopercent@relay.example")
    assert routes().rewrite("joe%x.org@relay.example") == (REMOTE, "joe%x.org@relay.example")


def test_strip_prepend_undoes_the_virtual_domain_prefix():
    r = routes(virtualdomains=VDOMS)
    assert r.strip_prepend("vuser-sue@virt.example.net") == "sue@virt.example.net"
    assert r.strip_prepend("wild-x@a.wild.org") == "x@a.wild.org"
    assert r.strip_prepend("other-sue@virt.example.net") == "other-sue@virt.example.net"
    assert r.strip_prepend("x@except.wild.org") == "x@except.wild.org"
    assert r.strip_prepend("noat") == "noat"


def test_load_reads_the_control_files(tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    (control / "me").write_text("me.example\n")
    (control / "virtualdomains").write_text("# comment\nv.example:pre  \n\n")
    (control / "percenthack").write_text("relay.example\n")
    r = routing.load(str(tmp_path))
    assert r.rewrite("x") == (LOCAL, "x@me.example")  # locals and envnoathost default to me
    assert r.rewrite("y@v.example") == (LOCAL, "pre-y@v.example")
    assert r.rewrite("a%me.example@relay.example") == (LOCAL, "a@me.example")


addresses = st.text(alphabet=st.sampled_from("abAB.@%-_xZ9"), max_size=30)
domains = st.text(alphabet=st.sampled_from("abAB.-xZ9"), max_size=12)


@given(addresses, st.lists(domains, max_size=4), st.lists(domains, max_size=3),
       st.lists(st.tuples(st.text(alphabet=st.sampled_from("abAB.@-x"), max_size=12),
                          st.text(alphabet=st.sampled_from("pq-"), max_size=4)), max_size=4))
def test_rewrite_properties(recip, locals_, percenthack, vdoms):
    r = routes(locals_, percenthack, [f"{k}:{v}" for k, v in vdoms])
    channel, addr = r.rewrite(recip)
    assert channel in (LOCAL, REMOTE)
    assert "@" in addr
    if channel == REMOTE:
        # remote addresses are never given a prefix: they end with the (hacked) address
        assert addr.count("@") <= max(recip.count("@"), 1)
    # rewriting is stable for what it does not prefix: a local address from locals or
    # any remote address routes the same way again
    if channel == REMOTE or addr.rpartition("@")[2].lower() in {d.lower() for d in locals_}:
        if not percenthack:
            assert r.rewrite(addr) == (channel, addr)
    # strip_prepend gives back what the virtual domain prefixed
    if channel == LOCAL and addr != recip and "-" in addr:
        stripped = r.strip_prepend(addr)
        assert addr.endswith(stripped)
