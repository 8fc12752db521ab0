"""relay-ctrl-allow: record the POP client's address for relaying, then run prog.

Synopsis:
    relay-ctrl-allow prog [args...]

See qmail.pop3.relay_ctrl for the whole scheme. Touches $RELAY_CTRL_DIR/$TCPREMOTEIP;
never fails the login for that (a warning on stderr instead).

Exit codes: 100 usage; 111 prog cannot be run; otherwise prog's.
Environment: RELAY_CTRL_DIR, TCPREMOTEIP.
"""

import os
import sys

from qmail.pop3 import relay_ctrl
from ucspi.runtime import exitcodes

PROG = "relay-ctrl-allow"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        exitcodes.usage(PROG, f"{PROG} prog [args...]")
    env = os.environ
    path = relay_ctrl.address_file(env)
    if path is None:
        if not env.get("RELAY_CTRL_DIR"):
            exitcodes.warn(PROG, "RELAY_CTRL_DIR not set: nothing recorded")
        else:
            exitcodes.warn(PROG, f"TCPREMOTEIP {env.get('TCPREMOTEIP', '')!r} is not an "
                                 "IP address: nothing recorded")
    else:
        try:
            relay_ctrl.record(path)
        except OSError as err:
            exitcodes.warn_sys(PROG, f"unable to record {path}", err)
    return relay_ctrl.run(PROG, argv, {})
