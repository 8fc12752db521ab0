"""Where this qmail installation lives (DESIGN.md section 2).

qmail compiles /var/qmail in; we find the root at run time: $QMAIL_ROOT when set (the
ROOT/bin launchers written by qmail-install pin it), else /var/qmail. Every qmail program
asks here, once, and uses paths under it (control/, queue/, users/, alias/, bin/).
"""

import os

DEFAULT = "/var/qmail"
VARIABLE = "QMAIL_ROOT"


def root(env=None) -> str:
    """The installation root for a program started with env (default os.environ)."""
    env = os.environ if env is None else env
    return env.get(VARIABLE) or DEFAULT
