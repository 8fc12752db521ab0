""".qmail files (dot-qmail(5)): which file controls an address, and what its lines say.

qmail-local looks for the controlling file in the user's home directory:

  * the exact file `.qmail` + dash + ext;
  * failing that, each `-default` file from the most specific to the least: for ext
    `a-b-c`, `.qmail-a-b-default`, `.qmail-a-default`, `.qmail-default`;

where ext is lowercased and every `.` becomes `:` (so no file name can contain `..`).
When a `-default` file (or an exact file whose name ends in `default`) is chosen, DEFAULT
is the part of ext the `default` stands for.

A line of the file is one delivery instruction, by its first character:
`#` comment, `.` or `/` a file (mbox) or, ending in `/`, a Maildir, `|` a program,
`&` a forward, `+list` makes the rest of the file forward-only, anything else a forward
address.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Instruction:
    """One line: kind is maildir, mbox, program, forward or list; target its argument."""
    kind: str
    target: bytes


class FirstLineBlank(Exception):
    """The first line of the .qmail file is blank."""


def safe_ext(ext: bytes) -> bytes:
    """The extension as it appears in file names: lowercased, `.` turned into `:`."""
    return ext.lower().replace(b".", b":")


def candidates(dash: bytes, ext: bytes) -> list[tuple[bytes, bytes | None]]:
    """The file names to try in order, each with the DEFAULT value it implies (None: unset).

    The first one that exists as a regular file controls delivery.
    """
    safe = safe_ext(ext)
    exact = b".qmail" + dash + safe
    exact_default = None
    if len(safe) >= 7 and safe.endswith(b"default"):
        cut = len(safe) - 7
        if cut <= len(ext):
            exact_default = ext[cut:]
    names = [(exact, exact_default)]
    for i in range(len(safe), -1, -1):
        if i == 0 or safe[i - 1:i] == b"-":
            names.append((b".qmail" + dash + safe[:i] + b"default",
                          ext[i:] if i <= len(ext) else None))
    return names


def extension_fields(ext: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """EXT, EXT2, EXT3, EXT4: the extension and what follows its first, second, third dash."""
    fields = [ext]
    rest = ext
    for _ in range(3):
        cut = rest.find(b"-")
        rest = b"" if cut < 0 else rest[cut + 1:]
        fields.append(rest)
    return fields[0], fields[1], fields[2], fields[3]


def host_fields(host: bytes) -> tuple[bytes, bytes, bytes]:
    """HOST2, HOST3, HOST4: the host without its last one, two, three dot-components
    (a host with fewer dots stays as it is, as qmail-local cuts only at a dot)."""
    fields = []
    end = len(host)
    for _ in range(3):
        cut = host.rfind(b".", 0, end)
        if cut >= 0:
            end = cut
        fields.append(host[:end])
    return fields[0], fields[1], fields[2]


def parse(text: bytes) -> list[Instruction]:
    """The instructions of a .qmail file's text, in order (`+list` is kind "list").

    Trailing spaces and tabs are dropped from each line; a blank first line raises
    FirstLineBlank; comments and later blank lines are skipped.
    """
    if not text.endswith(b"\n"):
        text += b"\n"
    instructions = []
    for number, raw in enumerate(text.split(b"\n")[:-1]):
        line = raw.rstrip(b" \t")
        if not line:
            if number == 0:
                raise FirstLineBlank()
            continue
        first = line[:1]
        if first == b"#":
            continue
        if first in (b".", b"/"):
            kind = "maildir" if line.endswith(b"/") else "mbox"
            instructions.append(Instruction(kind, line))
        elif first == b"|":
            instructions.append(Instruction("program", line[1:]))
        elif first == b"+":
            if line == b"+list":
                instructions.append(Instruction("list", b""))
        elif first == b"&":
            instructions.append(Instruction("forward", line[1:]))
        else:
            instructions.append(Instruction("forward", line))
    return instructions
