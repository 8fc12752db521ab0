"""Starting tcpserver (ours or C's) for tests: port 0, the chosen port read from -1."""

from tests import support


def start_tcpserver(args, program, env=None, binary=None, host="127.0.0.1", cwd=None) -> tuple[support.Proc, int]:
    """Run `tcpserver -1 ARGS host 0 PROGRAM...`; returns (proc, port). binary: C path or ours."""
    binary = binary or support.prog("tcpserver")
    proc = support.Proc([binary, "-1", *args, host, "0", *program], env=env, cwd=cwd)
    line = proc.out.wait_line(lambda l: l.strip().isdigit(), timeout=15)
    return proc, int(line)


def exchange(port: int, send: bytes = b"", host: str = "127.0.0.1", shut: bool = True) -> bytes:
    """Connect, send, half-close, and return all the server sent back."""
    with support.connect(port, host) as s:
        if send:
            s.sendall(send)
        if shut:
            s.shutdown(1)
        return support.recv_all(s)
