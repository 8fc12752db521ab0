"""envdir against daemontools' C envdir: variables from files (first line, trailing blanks,
NULs, empty files, odd names), order of the child's environment, errors and codes."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chain_probe import env, ours, outcome, probe, run, shared_dir, state, theirs  # noqa: F401

FILES = {
    "V": b"value \t\nsecond line\n",
    "NULS": b"a\0b \0 \t",
    "EMPTYLINE": b"\n",
    "HOME": b"",              # empty: removes $HOME
    "A=B": b"x",              # variable A, value "B=x", as 0.76
    "C=D": b"",
    "=q": b"y",
    "LATIN": b"caf\xe9\n",     # not UTF-8: passed on byte for byte
    ".hidden": b"skipped\n",
}


def make_dir(base, files: dict, name="env") -> str:
    d = os.path.join(base, name)
    os.mkdir(d)
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    return d


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "exec"])
def test_variables_and_their_order_are_as_with_c(probe, shared_dir, warm):
    d = make_dir(shared_dir, FILES)
    os.symlink("nowhere", os.path.join(d, "DANGLING"))  # 0.76 reuses the previous value
    more = make_dir(shared_dir, {"W": b"w\n", "V": b""}, "more")
    start = env(warm, A="old", V="old", X="1")
    # warm: the second envdir continues in the first one's process
    c = state([theirs("envdir"), d, theirs("envdir"), more, probe], start)
    o = state([ours("envdir"), d, ours("envdir"), more, probe], start)
    assert o == c
    assert "NULS=a\nb \n" in o["env"] and "A=B=x" in o["env"] and "HOME" not in "".join(o["env"])


def test_warm_started_program_sees_the_variables(shared_dir):
    d = make_dir(shared_dir, {"GREETING": b"hello  \n", "HOME": b""})
    report = json.loads(run([ours("envdir"), d, ours("ucspi-probe")]).stdout)
    assert report["warm"] is True
    assert report["env"]["GREETING"] == "hello" and "HOME" not in report["env"]


def test_child_is_found_with_the_starting_path_not_the_new_one(probe, shared_dir):
    d = make_dir(shared_dir, {"PATH": b"/nonexistent\n"})
    start = env(True, PATH=f"{shared_dir}:/usr/bin:/bin")
    c = state([theirs("envdir"), d, "probe"], start)
    o = state([ours("envdir"), d, "probe"], start)
    assert o == c
    assert "PATH=/nonexistent" in o["env"]


def test_current_directory_is_kept(probe, shared_dir):
    d = make_dir(shared_dir, {"X": b"1"})
    c = state([theirs("envdir"), d, probe], cwd="/usr")
    o = state([ours("envdir"), d, probe], cwd="/usr")
    assert o == c and o["cwd"] == "/usr"


def test_errors_and_exit_codes_match_c(shared_dir):
    good = make_dir(shared_dir, {"X": b"1"})
    with_subdir = make_dir(shared_dir, {"X": b"1"}, "withsub")
    os.mkdir(os.path.join(with_subdir, "sub"))
    loop = make_dir(shared_dir, {}, "loop")
    os.symlink("self", os.path.join(loop, "self"))
    plain = os.path.join(shared_dir, "plainfile")
    open(plain, "w").close()
    os.chmod(plain, 0o644)
    for args in ([], [good], ["/nonexistent", "true"], [plain, "true"], [with_subdir, "true"],
                 [loop, "true"], [good, "/nonexistent/prog"], [good, "nosuchprogram-xyz"],
                 [good, plain], [good, "sh", "-c", "exit 5"]):
        assert outcome([ours("envdir"), *args]) == outcome([theirs("envdir"), *args]), args


def test_empty_file_named_with_leading_equals_is_left_out(probe, shared_dir):
    d = make_dir(shared_dir, {"=x": b"", "Y": b"1"})
    assert state([ours("envdir"), d, probe])["env"][-1] == "Y=1"


def test_usage_exits_111_as_c():
    assert outcome([ours("envdir")]) == (111, b"", b"envdir: usage: envdir dir child\n")


def test_name_in_path_that_is_not_executable_is_access_denied(shared_dir):
    target = os.path.join(shared_dir, "notexec")
    open(target, "w").close()
    d = make_dir(shared_dir, {})
    start = env(True, PATH=f"{shared_dir}:/usr/bin")
    c = outcome([theirs("envdir"), d, "notexec"], start)
    assert outcome([ours("envdir"), d, "notexec"], start) == c
    assert c[2] == b"envdir: fatal: unable to run notexec: access denied\n"


names = st.text(alphabet="ABCxyz_09=.-", min_size=1, max_size=6).filter(
    lambda n: not n.startswith(".") or n not in (".", ".."))
contents = st.lists(st.sampled_from([b"a", b"Z", b" ", b"\t", b"\n", b"\0", b"=", b"\xff", b"\xc3\xa9"]),
                    max_size=12).map(b"".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(names, contents, max_size=6), preset=st.dictionaries(names.filter(
    lambda n: "=" not in n and not n.startswith(".")), st.text("ab ", max_size=3), max_size=3))
def test_any_directory_gives_the_same_environment_as_c(probe, files, preset, tmp_path_factory):
    # known difference: an empty file named "=x" makes C pass the malformed entry "=x"
    files = {n: v for n, v in files.items() if v or not n.startswith("=") or "=" in n[1:]}
    base = str(tmp_path_factory.mktemp("envdir"))
    d = make_dir(base, files)
    start = env(False, **preset)
    c = outcome([theirs("envdir"), d, probe], start)
    assert outcome([ours("envdir"), d, probe], start) == c
