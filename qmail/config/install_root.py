"""Where this qmail installation lives (docs/architecture.md, "Root mode and embedded mode").

qmail compiles /var/qmail in; we find the root at run time: $QMAIL_ROOT when set (the
ROOT/bin launchers written by qmail-install pin it), else /var/qmail. Every qmail program
asks here, once, and uses paths under it (control/, queue/, users/, alias/, bin/).
"""

import os
import sys

DEFAULT = "/var/qmail"
VARIABLE = "QMAIL_ROOT"


def root(env=None) -> str:
    """The installation root for a program started with env (default os.environ)."""
    env = os.environ if env is None else env
    return env.get(VARIABLE) or DEFAULT


def program(name: str, root_dir: str | None = None) -> str:
    """ROOT/bin/NAME when installed there (its launcher pins ROOT), else this suite's NAME
    beside the running interpreter."""
    installed = os.path.join(root_dir or root(), "bin", name)
    if os.path.exists(installed):
        return installed
    return os.path.join(os.path.dirname(os.path.abspath(sys.executable)), name)
