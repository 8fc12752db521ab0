"""qmail-qstat, qmail-qread, qmail-tcpto, qmail-tcpok: the queue's status tools, their
original output formats."""

import os
import re
import time

from qmail.queue import queue_client, queue_layout
from qmail.tools.qmail_qread import stats_line
from qmail.remote.qmail_tcpto import lines as tcpto_lines
from tests import qmail_trees, support


def run(name, root):
    return support.run([support.prog(name)], env=support.suite_env(QMAIL_ROOT=root))


def inject(root, n=1):
    for i in range(n):
        assert queue_client.enqueue(b"Subject: %d\n\nx\n" % i, "s@x", ["r@x"], root=root,
                                    env=support.suite_env()).ok


def preprocess(root, num, sender, local=(), remote=(), bouncing=False, when=None):
    """Write info/local/remote (and bounce) as qmail-send leaves them for a message."""
    qdir = queue_layout.queue_dir(root)
    with open(queue_layout.info(qdir, num), "wb") as f:
        f.write(b"F" + sender + b"\0")
    if when is not None:
        os.utime(queue_layout.info(qdir, num), (when, when))
    for kind, items in (("local", local), ("remote", remote)):
        if items:
            with open(queue_layout.path(qdir, kind, num), "wb") as f:
                f.write(b"".join(k + a + b"\0" for k, a in items))
    if bouncing:
        open(queue_layout.bounce(qdir, num), "wb").close()


def test_qstat_counts_messages_and_unprocessed_ones(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    done = run("qmail-qstat", root)
    assert done.stdout == (b"messages in queue: 0\n"
                           b"messages in queue but not yet preprocessed: 0\n")
    inject(root, 3)
    num = qmail_trees.queued(root)[0]
    os.unlink(queue_layout.todo(queue_layout.queue_dir(root), num))  # as if preprocessed
    done = run("qmail-qstat", root)
    assert done.returncode == 0
    assert done.stdout == (b"messages in queue: 3\n"
                           b"messages in queue but not yet preprocessed: 2\n")


def test_qstat_without_a_queue_is_111(tmp_path):
    done = run("qmail-qstat", str(tmp_path / "none"))
    assert done.returncode == 111
    assert done.stderr.startswith(b"qmail-qstat: fatal: unable to read ")


def test_qread_lists_each_message_with_its_recipients(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    inject(root, 2)
    first, second = qmail_trees.queued(root)
    when = 1700000000  # 14 Nov 2023 22:13:20 GMT
    preprocess(root, first, b"a@b.c", local=[(b"T", b"demo@x"), (b"D", b"done@x")],
               remote=[(b"T", b"far@away")], when=when)
    preprocess(root, second, b"", remote=[(b"T", b"odd\x01@x")], bouncing=True, when=when)
    size1 = len(qmail_trees.message(root, first))
    size2 = len(qmail_trees.message(root, second))
    done = run("qmail-qread", root)
    assert done.returncode == 0
    expected = {
        first: (f"14 Nov 2023 22:13:20 GMT  #{first}  {size1}  <a@b.c> \n"
                "\tlocal\tdemo@x\n  done\tlocal\tdone@x\n\tremote\tfar@away\n"),
        second: (f"14 Nov 2023 22:13:20 GMT  #{second}  {size2}  <>  bouncing\n"
                 "\tremote\todd_@x\n"),
    }
    order = sorted((first, second), key=lambda n: (n % 23, n))
    assert done.stdout.decode() == "".join(expected[n] for n in order)


def test_qread_warns_about_a_message_it_cannot_read(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    qdir = queue_layout.queue_dir(root)
    with open(queue_layout.info(qdir, 46), "wb") as f:
        f.write(b"Fs\0")  # info without mess
    done = run("qmail-qread", root)
    assert done.returncode == 0
    assert done.stdout == b"warning: trouble with #46: file does not exist\n"


def test_qread_stats_line_format():
    line = stats_line(123, 456, 809413614, b"x@y", False)
    assert line == "26 Aug 1995 05:06:54 GMT  #123  456  <x@y> "
    assert re.fullmatch(r".* GMT  #1  0  <>  bouncing", stats_line(1, 0, time.time(), b"", True))


def test_tcpto_prints_hosts_with_timeouts(tmp_path):
    root = qmail_trees.embedded_tree(tmp_path)
    table = bytearray(1024)
    now = int(time.time())
    table[0:16] = bytes([192, 0, 2, 7, 3, 0, 0, 0]) + (now - 100).to_bytes(4, "little") + bytes(4)
    table[32:48] = bytes([10, 0, 0, 1, 0, 0, 0, 0]) + now.to_bytes(4, "little") + bytes(4)
    with open(queue_layout.tcpto(queue_layout.queue_dir(root)), "wb") as f:
        f.write(table)
    done = run("qmail-tcpto", root)
    assert done.returncode == 0
    assert re.fullmatch(rb"192\.0\.2\.7 timed out (100|101|102) seconds ago; "
                        rb"# recent timeouts: 3\n", done.stdout), done.stdout
    assert run("qmail-tcpok", root).returncode == 0
    assert open(queue_layout.tcpto(queue_layout.queue_dir(root)), "rb").read() == bytes(1024)
    assert run("qmail-tcpto", root).stdout == b""


def test_tcpto_lines_use_each_16_byte_record():
    table = bytes([1, 2, 3, 4, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0]) * 2
    assert tcpto_lines(table, 20) == ["1.2.3.4 timed out 10 seconds ago; # recent timeouts: 1"] * 2


def test_tcpok_and_tcpto_report_a_missing_queue(tmp_path):
    done = run("qmail-tcpok", str(tmp_path / "none"))
    assert done.returncode == 111
    assert done.stderr == (f"qmail-tcpok: fatal: unable to chdir to {tmp_path / 'none'}: "
                           "file does not exist\n").encode()
    done = run("qmail-tcpto", str(tmp_path / "none"))
    assert (done.returncode, done.stdout) == (111, b"fatal: unable to chdir: file does not exist\n")
