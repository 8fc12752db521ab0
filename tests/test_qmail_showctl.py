"""qmail-showctl: every control file with its value or qmail-control(5)'s default, in the
original's wording."""

import os
import time

from tests import qmail_trees, support


def showctl(root) -> str:
    done = support.run([support.prog("qmail-showctl")], env=support.suite_env(QMAIL_ROOT=root))
    assert done.returncode == 0, done
    return done.stdout.decode("latin-1")


def control(root, name, text: bytes):
    with open(os.path.join(root, "control", name), "wb") as f:
        f.write(text)


def test_header_gives_root_and_compiled_settings(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    lines = showctl(root).split("\n")
    assert lines[:5] == [f"qmail home directory: {root}.", "user-ext delimiter: -.",
                         "paternalism (in decimal): 2.", "silent concurrency limit: 120.",
                         "subdirectory split: 23."]
    assert lines[5].startswith("user ids: ") and lines[5].count(",") == 7
    assert lines[6].startswith("group ids: ") and lines[6].count(",") == 1


def test_defaults_and_values_in_the_original_wording(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path, fqdn="mx.example.org")
    control(root, "databytes", b"1000000\n")
    control(root, "badmailfrom", b"# comment\nspam@x\n\n@evil.org\n")
    control(root, "concurrencyremote", b"junk\n")
    out = showctl(root)
    for expected in [
        "\nbadmailfrom: \nspam@x not accepted in MAIL FROM.\n@evil.org not accepted in MAIL FROM.\n",
        "\nbouncefrom: (Default.) Bounce user name is MAILER-DAEMON.\n",
        "\nbouncehost: (Default.) Bounce host name is mx.example.org.\n",
        "\nconcurrencylocal: (Default.) Local concurrency is 10.\n",
        "\nconcurrencyremote: (Default.) Remote concurrency is 20.\n",
        "\ndatabytes: SMTP DATA limit is 1000000 bytes.\n",
        "\ndefaultdomain: Default domain name is example.org.\n",
        "\ndoublebounceto: (Default.) 2B recipient user: postmaster.\n",
        "\nlocals: \nMessages for mx.example.org are delivered locally.\n",
        "\nme: My name is mx.example.org.\n",
        "\npercenthack: (Default.) The percent hack is not allowed.\n",
        "\nqueuelifetime: (Default.) Message lifetime in the queue is 604800 seconds.\n",
        "\nrcpthosts: \nSMTP clients may send messages to recipients at mx.example.org.\n",
        "\nmorercpthosts: (Default.) No effect.\n",
        "\nmorercpthosts.cdb: (Default.) No effect.\n",
        "\nsmtpgreeting: (Default.) SMTP greeting: 220 mx.example.org.\n",
        "\nsmtproutes: (Default.) No artificial SMTP routes.\n",
        "\ntimeoutsmtpd: (Default.) SMTP server data timeout is 1200 seconds.\n",
        "\nvirtualdomains: (Default.) No virtual domains.\n",
        "\ndefaultdelivery: I have no idea what this file does.\n",
    ]:
        assert expected in out, expected


def test_without_rcpthosts_morercpthosts_is_irrelevant(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    os.unlink(os.path.join(root, "control", "rcpthosts"))
    control(root, "morercpthosts", b"a.example\n")
    out = showctl(root)
    assert "\nrcpthosts: (Default.) SMTP clients may send messages to any recipient.\n" in out
    assert ("\nmorercpthosts: \nNo rcpthosts; doesn't matter that morercpthosts has "
            "a.example.\n") in out
    assert "\nmorercpthosts.cdb: Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n" in out


def test_stale_morercpthosts_cdb_is_reported(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    control(root, "morercpthosts.cdb", b"")
    control(root, "morercpthosts", b"b.example\n")
    old = time.time() - 100
    os.utime(os.path.join(root, "control", "morercpthosts.cdb"), (old, old))
    assert "\nmorercpthosts.cdb: Oops! morercpthosts.cdb is older than morercpthosts.\n" in showctl(root)
    os.utime(os.path.join(root, "control", "morercpthosts"), (old - 100, old - 100))
    assert ("\nmorercpthosts.cdb: Modified recently enough; hopefully up to date.\n"
            in showctl(root))


def test_unprintable_bytes_show_as_question_marks(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    control(root, "helohost", b"h\x01\xe9lo\n")
    assert "\nhelohost: SMTP client HELO host name is h??lo.\n" in showctl(root)


def test_missing_root_is_reported_after_the_header(tmp_path):
    done = support.run([support.prog("qmail-showctl")],
                       env=support.suite_env(QMAIL_ROOT=tmp_path / "none"))
    assert done.returncode == 111
    assert done.stdout.endswith(f"Oops! Unable to chdir to {tmp_path / 'none'}.\n".encode())
