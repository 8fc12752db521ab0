"""datemail: sendmail with a local-time Date: line added by predate."""

import re
from pathlib import Path

from tests import qmail_trees, support
from tests.test_qmail_inject import FAKE_QUEUE, INJECT_VARIABLES


def test_message_gets_a_local_date_and_goes_through_sendmail(tmp_path):
    root = Path(qmail_trees.embedded_tree(tmp_path, fqdn="mx.example.com"))
    fake = tmp_path / "fakeq"
    fake.write_text(FAKE_QUEUE)
    fake.chmod(0o755)
    env = support.suite_env(**{**{name: None for name in INJECT_VARIABLES},
                               "QMAIL_ROOT": root, "USER": "alice", "TZ": "XYZ-5:30",
                               "QMAILQUEUE": fake, "FAKEQ_DIR": tmp_path})
    done = support.run([support.prog("datemail"), "-t", "-f", "s@x.y"],
                       input=b"To: t@a.b\nSubject: s\n\nbody\n", env=env)
    assert done.returncode == 0, done.stderr
    mess = (tmp_path / "message").read_bytes()
    assert len(re.findall(rb"^Date: ", mess, re.M)) == 1  # qmail-inject keeps predate's
    assert re.search(rb"^Date: \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0530\n", mess, re.M)
    assert (tmp_path / "envelope").read_bytes() == b"Fs@x.y\0Tt@a.b\0\0"


def test_sendmail_options_pass_through(tmp_path):
    done = support.run([support.prog("datemail"), "-z"], env=support.suite_env(QMAIL_ROOT=tmp_path))
    assert done.returncode == 100
    assert done.stderr.startswith(b"sendmail: illegal option -- z\nsendmail: usage: ")
