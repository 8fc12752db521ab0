"""multilog's script language: line patterns and the numeric settings of `s` and `n`.

A pattern is a string of stars and non-stars, matched as daemontools 0.76's match.c
does: a non-star matches itself; a star at the end matches anything; a star before
character c skips to the first c at or after the current position (it never backtracks,
and a star followed by another star first looks for a literal `*`).
Patterns are compiled once into tokens so that runs of literal bytes are compared whole.
"""

SIZE_DEFAULT = 99999
SIZE_MIN = 4096
SIZE_MAX = 16777215
NUM_DEFAULT = 10
NUM_MIN = 2
_ULONG = 1 << 64


def compile_pattern(pattern: bytes) -> tuple:
    """Tokens for match(): (literal bytes, None) or (None, byte a star skips to or b"")."""
    tokens = []
    i, n = 0, len(pattern)
    while i < n:
        star = pattern.find(b"*", i)
        if star < 0:
            tokens.append((pattern[i:], None))
            break
        if star > i:
            tokens.append((pattern[i:star], None))
        tokens.append((None, pattern[star + 1:star + 2]))  # b"": star at the end
        i = star + 1
    return tuple(tokens)


def match(tokens: tuple, line: bytes) -> bool:
    """Whether the compiled pattern matches the whole of line."""
    pos = 0
    for literal, skip_to in tokens:
        if literal is not None:
            if not line.startswith(literal, pos):
                return False
            pos += len(literal)
        elif not skip_to:
            return True
        else:
            pos = line.find(skip_to, pos)
            if pos < 0:
                return False
    return pos == len(line)


def matches(pattern: bytes, line: bytes) -> bool:
    """match() with the pattern given as text."""
    return match(compile_pattern(pattern), line)


def scan_ulong(text: bytes) -> int:
    """The leading decimal digits as C's unsigned long (wrapping, 0 when none)."""
    n = 0
    for ch in text:
        if not 48 <= ch <= 57:
            break
        n = (n * 10 + ch - 48) % _ULONG
    return n


def parse_size(action: bytes) -> int:
    """The maximum file size an `ssize` action sets, clamped to 4096..16777215."""
    return min(max(scan_ulong(action[1:]), SIZE_MIN), SIZE_MAX)


def parse_num(action: bytes) -> int:
    """The number of log files an `nnum` action sets, at least 2."""
    return max(scan_ulong(action[1:]), NUM_MIN)
