"""Throwaway certificates for the TLS tests (sslserver, sslclient, POP3S, STLS, SMTPS...).

Made with the `openssl` command-line tool, once per test session, into a temporary
directory every user can read (the embedded-mode tests run servers as an ordinary user,
devtools/ordinary_user.py), removed when the session ends. The keys are unencrypted
(except `server_key_encrypted`, whose pass phrase is PASSWORD) and worthless.

Use the `certs` fixture (session scope) in a test module:

    from tests.tls_certs import certs  # noqa: F401  (the fixture)

    def test_something(certs):
        env = support.suite_env(**certs.server_env())       # CERTFILE, KEYFILE for sslserver
        context = certs.client_context()                     # a Python client trusting the CA
        ...

or `tls_certs.session_certs()` outside pytest. What a Certs holds (all str paths, PEM):

    ca                     the test CA's certificate: the trust anchor (CAFILE, CCAFILE,
                           sslclient -a, openssl -CAfile)
    server_cert, server_key
                           CN=localhost, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1,
                           extendedKeyUsage serverAuth, signed by the CA
    server_pem             server_cert and server_key in one file (CERTFILE alone)
    server_key_encrypted   server_key under PASSWORD (sslserver -3)
    other_cert, other_key  CN=other.example (SAN DNS:other.example only), signed by the CA:
                           valid, but not for localhost or 127.0.0.1 (name checks)
    client_cert, client_key
                           CN=client.example, emailAddress, O=Example Clients,
                           extendedKeyUsage clientAuth, signed by the CA
    rogue_ca               another CA, which nobody trusts
    rogue_cert, rogue_key  a client certificate signed by rogue_ca (to be rejected)
    directory              where they all are

and the helpers server_env(), client_context(), server_context().

Client: a TLS client for tests over memory BIOs, every step explicit, independent of the
suite's own TLS code:

    client = Client.connect(port, certs.client_context())   # handshake done
    client = Client(sock, certs.client_context()); client.handshake()
                              # over a socket that spoke plaintext first (STLS, STARTTLS)
    client.send(b"line\n");  client.recv();  client.read_until(b"\n")
    client.close_notify()     # TLS EOF (we may still read)
    client.shutdown()         # TCP half-close, no close_notify
    client.read_all()         # to the server's end; client.eof says how it came:
                              # "close_notify", or "tcp" (a bare TCP EOF)
    client.exchange(data)     # send data while reading, then close_notify, then read to
                              # the end: what came back (megabytes both ways)
"""

from __future__ import annotations

import atexit
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PASSWORD = "test pass phrase"
DAYS = "3650"
_session: Certs | None = None


class Certs:
    """The files of one make() (see the module's docstring)."""

    def __init__(self, directory: Path):
        self.directory = str(directory)
        for name in ("ca", "rogue_ca"):
            setattr(self, name, str(directory / f"{name}.pem"))
        for name in ("server", "other", "client", "rogue"):
            setattr(self, f"{name}_cert", str(directory / f"{name}.pem"))
            setattr(self, f"{name}_key", str(directory / f"{name}.key"))
        self.server_pem = str(directory / "server-with-key.pem")
        self.server_key_encrypted = str(directory / "server-encrypted.key")

    def server_env(self, **extra) -> dict:
        """CERTFILE and KEYFILE for sslserver (plus extra variables)."""
        return {"CERTFILE": self.server_cert, "KEYFILE": self.server_key, **extra}

    def client_context(self, cert: bool = False) -> ssl.SSLContext:
        """A client context trusting the test CA and checking the name; cert: presenting
        the client certificate."""
        context = ssl.create_default_context(cafile=self.ca)
        if cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def server_context(self, client_certs: bool = False) -> ssl.SSLContext:
        """A server context with the localhost certificate; client_certs: requiring a
        client certificate signed by the test CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if client_certs:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


class Client:
    """A TLS client over memory BIOs (see the module's docstring). Raises TimeoutError
    when the server keeps it waiting, ssl.SSLError when TLS fails."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext,
                 server_hostname: str | None = "localhost"):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.eof: str | None = None
        self.stash = bytearray()  # decrypted, not yet returned

    @classmethod
    def connect(cls, port: int, context: ssl.SSLContext, host: str = "127.0.0.1",
                server_hostname: str | None = "localhost", timeout: float = 10) -> "Client":
        sock = socket.create_connection((host, port), timeout=timeout)
        client = cls(sock, context, server_hostname)
        client.handshake(timeout)
        return client

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            raise TimeoutError("the server sent nothing")
        data = self.sock.recv(65536)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def handshake(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill(deadline)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def _drain(self) -> None:
        """Decrypt what has come into the stash: OpenSSL's wait for the peer's close_notify
        (in unwrap) would discard a data record it found."""
        while self.eof is None:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                data = b""
            except ssl.SSLEOFError:
                self.eof = "tcp"
                return
            if not data:
                self.eof = "close_notify"
                return
            self.stash += data

    def close_notify(self) -> None:
        self._drain()
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._flush()

    def shutdown(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def recv(self, timeout: float = 10) -> bytes:
        """Some data, or b"" at the end (self.eof says how it came)."""
        deadline = time.monotonic() + timeout
        if self.stash:
            data, self.stash = bytes(self.stash), bytearray()
            return data
        while self.eof is None:
            try:
                data = self.tls.read(65536)
                if not data:
                    self.eof = "close_notify"
                return data
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self.eof = "close_notify"
                return b""
            except ssl.SSLEOFError:
                self.eof = "tcp"
                return b""
            self._flush()
            self._fill(deadline)
        return b""

    def read_until(self, marker: bytes, timeout: float = 10) -> bytes:
        got = b""
        while marker not in got:
            data = self.recv(timeout)
            if not data:
                break
            got += data
        return got

    def read_all(self, timeout: float = 10) -> bytes:
        chunks = []
        while True:
            data = self.recv(timeout)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def exchange(self, data: bytes, timeout: float = 60) -> bytes:
        """Send data while reading what comes back, then close_notify, then read to the
        end; what came back."""
        deadline = time.monotonic() + timeout
        self.sock.setblocking(False)
        received, pending, sent, notified = bytearray(), bytearray(), 0, False
        try:
            while True:
                if len(pending) < 65536 and sent < len(data):
                    self.tls.write(data[sent:sent + 65536])
                    sent = min(sent + 65536, len(data))
                while True:
                    try:
                        chunk = self.tls.read(65536)
                    except ssl.SSLWantReadError:
                        break
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as err:
                        self.eof = "tcp" if isinstance(err, ssl.SSLEOFError) else "close_notify"
                        chunk = b""
                    if not chunk:
                        self.eof = self.eof or "close_notify"
                        return bytes(received)
                    received += chunk
                if sent >= len(data) and not notified:  # nothing undecrypted now (see _drain)
                    try:
                        self.tls.unwrap()
                    except ssl.SSLWantReadError:
                        pass
                    notified = True
                pending += self.outgoing.read()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"exchange: {len(received)} bytes back, {sent} sent")
                readable, writable, _ = select.select([self.sock], [self.sock] if pending else [], [], left)
                if writable:
                    try:
                        del pending[:self.sock.send(pending)]
                    except BlockingIOError:
                        pass
                if readable:
                    try:
                        raw = self.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if raw:
                        self.incoming.write(raw)
                    else:
                        self.incoming.write_eof()
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.decode(errors='replace')}")


def _ca(directory: Path, name: str, subject: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", DAYS,
             "-subj", subject, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)


def _leaf(directory: Path, name: str, ca: str, subject: str, extensions: str, serial: int) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-set_serial", str(serial), "-days", DAYS, "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem", cwd=directory)


def make(directory: Path) -> Certs:
    """Make every certificate and key into directory (which exists); world-readable."""
    directory = Path(directory)
    _ca(directory, "ca", "/O=djb-suite tests/CN=djb-suite test CA")
    _ca(directory, "rogue_ca", "/CN=rogue test CA")
    _leaf(directory, "server", "ca", "/CN=localhost",
          "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
          "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n", 1001)
    _leaf(directory, "other", "ca", "/CN=other.example",
          "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
          "subjectAltName=DNS:other.example\n", 1002)
    _leaf(directory, "client", "ca",
          "/C=DE/O=Example Clients/CN=client.example/emailAddress=client@example.com",
          "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", 1003)
    _leaf(directory, "rogue", "rogue_ca", "/CN=rogue.example",
          "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", 1004)
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout", f"pass:{PASSWORD}",
             "-out", "server-encrypted.key", cwd=directory)
    (directory / "server-with-key.pem").write_bytes(
        (directory / "server.pem").read_bytes() + (directory / "server.key").read_bytes())
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)
    return Certs(directory)


def session_certs() -> Certs:
    """The session's certificates: made on first use under /tmp, removed at exit."""
    global _session
    if _session is None:
        directory = Path(tempfile.mkdtemp(prefix="tls-certs-", dir="/tmp"))
        atexit.register(shutil.rmtree, directory, True)
        _session = make(directory)
    return _session


@pytest.fixture(scope="session")
def certs() -> Certs:
    """The session's Certs (see the module's docstring)."""
    return session_certs()


if __name__ == "__main__":  # print where a fresh set went (by hand: python -m tests.tls_certs DIR)
    import sys
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tls-certs-"))
    target.mkdir(parents=True, exist_ok=True)
    print(make(target).directory)
