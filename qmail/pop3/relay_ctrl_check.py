"""relay-ctrl-check: let a client that recently logged in by POP relay, then run prog.

Synopsis:
    relay-ctrl-check prog [args...]

See qmail.pop3.relay_ctrl for the whole scheme. Sets RELAYCLIENT (to
$RELAY_CTRL_RELAYCLIENT, default empty) when $RELAYCLIENT is unset and
$RELAY_CTRL_DIR/$TCPREMOTEIP was touched within $RELAY_CTRL_EXPIRY seconds (default 900);
removes the file when older. $RELAY_CTRL_LOG_IPS set: says what it decided on stderr.

Exit codes: 100 usage; 111 prog cannot be run; otherwise prog's.
"""

import os
import sys
import time

from qmail.pop3 import relay_ctrl
from ucspi.runtime import exitcodes

PROG = "relay-ctrl-check"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        exitcodes.usage(PROG, f"{PROG} prog [args...]")
    env = os.environ
    changes = {}
    if "RELAYCLIENT" in env:
        why = "RELAYCLIENT already set"
    else:
        path = relay_ctrl.address_file(env)
        if path is None:
            why = "no RELAY_CTRL_DIR or no IP address"
        else:
            ok, why = relay_ctrl.allowed(path, relay_ctrl.expiry(env), time.time())
            if ok:
                changes["RELAYCLIENT"] = env.get("RELAY_CTRL_RELAYCLIENT", "")
    if "RELAY_CTRL_LOG_IPS" in env:
        verdict = "set RELAYCLIENT" if changes else "did not set RELAYCLIENT"
        exitcodes.say(f"{PROG}: {env.get('TCPREMOTEIP', '')}: {verdict}: {why}")
    return relay_ctrl.run(PROG, argv, changes)
