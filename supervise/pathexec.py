"""pathexec: how daemontools' chain tools hand over to the next program.

The chain tools (setuidgid, envuidgid, envdir, softlimit, setlock, pgrphack, fghack)
end by running their child the way daemontools' pathexec does:

  * the child is looked up in the PATH of the environment the tool itself was started
    with, even when the tool changes $PATH for the child (envdir with a PATH file);
  * a name that exists along PATH but cannot be executed is reported as "access
    denied", not as missing;
  * environment changes (pathexec_env) are applied in order to the tool's environment:
    a changed variable's old entry is replaced by the last entry, and the new one is
    appended, so the child's environment is in the same order as under the C tools.

The starting environment is the one the tool was given: the LC_CTYPE=C.UTF-8 a cold
Python adds to itself when started without a locale is not passed on (launch.environ).
Two environments cannot be reproduced from Python: a name containing = makes the child
run by exec even when it is one of ours (such a name cannot be put into a running
process's environment), and the malformed entry "=name" (no value) is left out.

Our own programs continue warm in this process (ucspi.runtime.launch), others are exec'd.
Everything here returns values or raises OSError; the commands report.
"""

import importlib
from typing import NoReturn

from ucspi.runtime import launch


def env_with(changes, environ=None) -> dict:
    """environ (default launch.environ()) after changes, a sequence of (name, value or None).

    None removes the variable. A name containing = behaves as in the C tools: the part
    before the first = names the variable removed, and the whole "name=value" text is
    added as an entry.
    """
    environ = launch.environ() if environ is None else environ
    entries = [f"{key}={value}" for key, value in environ.items()]
    for name, value in changes:
        item = name if value is None else f"{name}={value}"
        split = item.find("=")
        if split < 0:
            split = len(item)
        key = item[:split]
        for index, entry in enumerate(entries):
            if entry.startswith(key) and entry[split:split + 1] == "=":
                entries[index] = entries[-1]
                entries.pop()
                break
        if split < len(item):
            entries.append(item)
    return _as_dict(entries)


def _as_dict(entries) -> dict:
    """Entries as a mapping os.execve turns back into the same "name=value" strings."""
    result = {}
    for entry in entries:
        # from 1: an entry such as "=x=1" keeps its leading "=" in the name
        split = entry.find("=", 1)
        if split > 0:
            result.setdefault(entry[:split], entry[split + 1:])
        # else: "=name" alone (an empty envdir file named "=name"): the C tools pass
        # that malformed entry on; execve from Python cannot, so it is left out
    return result


def account(prog: str, name: str):
    """The password entry of account name (setuidgid, envuidgid); `prog: fatal: unknown
    account name` (111) when there is none."""
    import pwd
    try:
        return pwd.getpwnam(name)
    except (KeyError, ValueError):
        from ucspi.runtime import exitcodes
        exitcodes.fatal(prog, f"unknown account {name}")


def prepare(child: list[str], env=None) -> None:
    """Import child's module now if it is one of ours and will run warm.

    setuidgid calls this before giving up root, so that a warm child does not depend on
    reading the interpreter's library as the new uid (exec would read it afresh anyway).
    """
    try:
        program = launch.locate(child[0])
    except OSError:
        return
    module = launch.resolve(program, launch.environ() if env is None else env)
    if module:
        importlib.import_module(module)


def run(child: list[str], env=None, keep_fds: tuple[int, ...] | None = launch.AS_EXEC) -> NoReturn:
    """Become child (looked up in this process's PATH) with env; OSError if impossible.
    The child keeps the descriptors exec would leave it (launch.AS_EXEC) unless told."""
    program = launch.locate(child[0])
    env = launch.environ() if env is None else env
    launch.exec_program(child, env, keep_fds, program=program)
