"""Lean console scripts: rewrite pip's wrappers of our commands in .venv/bin.

pip's wrapper imports `re` to tidy argv[0] (a Windows concern), which costs ~6 ms on
every start of every command; the small tools (svc, svstat, svok) start in about 20 ms
without it. Run by `make venv` after installing:

    python -m ucspi.runtime.console_scripts BINDIR

Each script in BINDIR whose body imports `main` from one of our packages becomes

    #!<same interpreter>
    import sys
    from <module> import main
    sys.exit(main())

which ucspi.runtime.launch still recognises. Other scripts are left alone. Exit 0, or 111 when
a script cannot be rewritten.
"""

import os
import sys

from ucspi.runtime import durable, exitcodes, launch

PROG = "console_scripts"


def lean(text: str) -> str | None:
    """The lean form of a pip wrapper of ours, or None when text is not one."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#!"):
        return None
    for line in lines[1:]:
        words = line.split()
        if (len(words) == 4 and words[0] == "from" and words[2] == "import" and words[3] == "main"
                and words[1].startswith(launch.SUITE_PACKAGES)):
            return f"{lines[0]}\nimport sys\nfrom {words[1]} import main\nsys.exit(main())\n"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) != 2:
        exitcodes.usage(PROG, "python -m ucspi.runtime.console_scripts bindir")
    for name in sorted(os.listdir(argv[1])):
        path = os.path.join(argv[1], name)
        try:
            with open(path) as f:
                text = f.read(4096)
        except (OSError, UnicodeDecodeError):
            continue
        new = lean(text)
        if new is None or new == text:
            continue
        try:
            durable.write_bytes(path, new.encode(), mode=0o755)
        except OSError as err:
            exitcodes.fatal_sys(PROG, f"unable to rewrite {path}", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
