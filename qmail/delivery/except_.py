"""except: reverse the exit code of a program (except(1)).

Synopsis:
    except program [ arg ... ]

Runs program; exits 100 if it exited 0, 0 if it exited non-zero (100 included), and 111
(`except: fatal: temporary child error`) if it exited 111. For .qmail lines such as
`|except grep -q spam` (bounce when grep finds something).

Exit codes: 0, 100, 111 as above; 100 usage; 111 when the program cannot be forked or
crashed.
"""

import sys

from qmail.delivery import delivery_program
from ucspi.runtime import exitcodes, sgetopt

PROG = "except"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    sgetopt.operands(argv, 1, PROG, "except program [ arg ... ]")
    code = run_judged(PROG, argv[1:])
    if code == 0:
        return 100
    return 0


def run_judged(prog: str, argv: list[str]) -> int:
    """Run argv for prog; its exit code, except 111 and crashes which end prog with 111."""
    try:
        code = delivery_program.run(argv)
    except OSError as err:
        exitcodes.fatal_sys(prog, "unable to fork", err)
    except delivery_program.WaitFailed:
        exitcodes.fatal(prog, "wait failed")
    except delivery_program.Crashed:
        exitcodes.fatal(prog, "child crashed")
    if code == 111:
        exitcodes.fatal(prog, "temporary child error")
    return code
