"""qmail-rspawn: schedule remote deliveries (qmail-rspawn(8)).

Synopsis: qmail-rspawn   (started by qmail-start, as qmailr in root mode)

Speaks qmail-send's spawn protocol on descriptors 0 and 1 (qmail/queue/spawn_protocol.py).
For each recipient user@host it runs `qmail-remote host sender recipient` with the
message on descriptor 0, and turns qmail-remote's per-recipient records and final
K/Z/D text into the report qmail-send logs (spawn_protocol.remote_report).  The
program is $QMAILREMOTE when set, else qmail-remote found along $PATH; ours is
warm-started (ucspi.runtime.launch).

Exit codes: 111 when ROOT/queue/mess is unusable; otherwise 0 once qmail-send closes the
protocol and the deliveries have ended.  Environment: QMAIL_ROOT, QMAILREMOTE, PATH.
"""

import os
import sys

from qmail.queue import spawn_protocol
from ucspi.runtime import exitcodes, launch

TRUNCREPORT = 0  # qmail-remote keeps its own reports short


def remote_program(env) -> str:
    return env.get("QMAILREMOTE") or "qmail-remote"


def run_remote(request: spawn_protocol.Request) -> int:
    """In the forked child: become qmail-remote host sender recipient."""
    host = request.recip[request.at + 1:]
    env = launch.environ()
    # Addresses are bytes; fsdecode round-trips them exactly into the argv exec passes.
    argv = [remote_program(env), os.fsdecode(host), os.fsdecode(request.sender),
            os.fsdecode(request.recip)]
    try:
        launch.exec_program(argv, env, keep_fds=())  # 0, 1, 2 only, as qmail-lspawn's children
    except OSError as err:
        return 111 if exitcodes.error_temp(err.errno or 0) else 100
    return 111


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    return spawn_protocol.serve(run_remote, spawn_protocol.remote_report, TRUNCREPORT)
