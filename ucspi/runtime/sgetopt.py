"""djb's getopt: option parsing with the C tools' diagnostics.

Options may be bundled (`-vRHl0`), an option's argument may be attached or the next
word, `--` ends the options, and the first word that is not an option ends them too.
An unknown option or a missing argument prints what djb's sgetopt prints
(`prog: illegal option -- Z`, `prog: option requires an argument -- x`) and raises
UsageError; the command then prints its usage line and exits 100.
"""

from ucspi.runtime import exitcodes


class UsageError(Exception):
    """The command line does not fit the program's options."""


def getopt(argv: list[str], optstring: str, prog: str | None = None, quiet: bool = False,
           rest_of_word: str = "") -> tuple[list[tuple[str, str]], list[str]]:
    """Parse argv[1:] against optstring ("ab:c": -b takes an argument).

    Returns ([(letter, argument or ""), ...], remaining words). quiet (subgetopt's way,
    as tcp-env uses it): nothing is printed, an unknown option comes back as
    ("?", letter) and a missing argument as an empty one, instead of raising. Letters in rest_of_word take the
    rest of their word, possibly empty, as an optional argument (sendmail's -E, -J).
    """
    prog = prog or "getopt"
    takes_arg = {}
    for i, ch in enumerate(optstring):
        if ch == ":":
            continue
        takes_arg[ch] = i + 1 < len(optstring) and optstring[i + 1] == ":"
    opts: list[tuple[str, str]] = []
    i = 1
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        j = 1
        while j < len(word):
            ch = word[j]
            if ch in rest_of_word:
                opts.append((ch, word[j + 1:]))
                break
            if ch not in takes_arg:
                if quiet:
                    opts.append(("?", ch))
                    j += 1
                    continue
                exitcodes.say(f"{prog}: illegal option -- {ch}")
                raise UsageError(ch)
            if takes_arg[ch]:
                if j + 1 < len(word):
                    opts.append((ch, word[j + 1:]))
                elif i + 1 < len(argv):
                    i += 1
                    opts.append((ch, argv[i]))
                elif quiet:
                    opts.append((ch, ""))
                else:
                    exitcodes.say(f"{prog}: option requires an argument -- {ch}")
                    raise UsageError(ch)
                break
            opts.append((ch, ""))
            j += 1
        i += 1
    return opts, argv[i:]


def scan_ulong(text: str) -> int:
    """djb's scan_ulong: the leading decimal digits as a number (0 when none)."""
    n = 0
    for ch in text:
        if not "0" <= ch <= "9":
            break
        n = n * 10 + ord(ch) - 48
    return n



def apply(opts: list[tuple[str, str]], target, flags: dict, values: dict,
          from_env: dict | None = None) -> list[tuple[str, str]]:
    """Set target's attributes from getopt's opts, in order, as a C tool's option switch
    does: flags maps a letter to (attribute, value), values maps one to (attribute,
    function of the argument), from_env to ((attribute, VARIABLE), ...), each attribute
    the number in that environment variable (-U's $UID and $GID). Returns the options
    none names, for the command."""
    rest = []
    for opt, arg in opts:
        if opt in flags:
            setattr(target, *flags[opt])
        elif opt in values:
            name, convert = values[opt]
            setattr(target, name, convert(arg))
        elif from_env and opt in from_env:
            import os
            for name, variable in from_env[opt]:
                setattr(target, name, scan_ulong(os.environ.get(variable, "")))
        else:
            rest.append((opt, arg))
    return rest


def options(argv: list[str], optstring: str, prog: str, usage: str,
            least: int = 0) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt, or the command's usage line and exit 100 when argv does not fit or fewer
    than least words follow the options (the opening of every command with options)."""
    try:
        opts, rest = getopt(argv, optstring, prog)
    except UsageError:
        exitcodes.usage(prog, usage)
    if len(rest) < least:
        exitcodes.usage(prog, usage)
    return opts, rest


def operands(argv: list[str], least: int, prog: str, usage: str) -> list[str]:
    """argv's words after the program's name, or the usage line and exit 100 when there
    are fewer than least (the opening of every command without options)."""
    if len(argv) < least + 1:
        exitcodes.usage(prog, usage)
    return argv[1:]
