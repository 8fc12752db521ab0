"""TLS for sslserver and sslclient, ucspi-ssl's "ssl process": the program talks plaintext
over its descriptors, and a relay process does TLS on the network socket.

    server_context, client_context
                 SSLContexts from ucspi-ssl's variables (CERTFILE, KEYFILE, CAFILE...) or
                 options; a failure is the command's fatal error, in ucspi-ssl's words
    Channel      one TLS connection over a socket, through memory BIOs (ssl.SSLObject):
                 handshake() within a deadline, then the Relay moves its data
    Relay        the loop between a Channel and the program's end of a socketpair
    environment  the SSL_* variables (mod_ssl's names, as ucspi-ssl's -s sets them)
    ucspitls_wait, ucspitls_answer
                 the UCSPI-TLS control protocol (sslserver -n, sslclient -y): the program
                 writes y or Y on its control socket; Y is answered with the SSL_*
                 variables, "NAME=value\\0"... "\\0"
    fork_child, wait_child, terminate, exit_as
                 the program's process: the relay is its parent and exits as it did

The relay (Relay.run), both directions at once, each bounded (LIMIT bytes waiting, then it
stops reading that side):
  network -> program  records decrypted as they come and written to the program's socket;
                      the peer's close_notify, or its TCP EOF (OP_IGNORE_UNEXPECTED_EOF),
                      becomes shutdown(SHUT_WR) on the program's socket: it reads EOF
  program -> network  whatever the program wrote is encrypted and sent as soon as it is
                      read (no waiting to fill a record); its EOF (every holder of its
                      end closed, or shutdown(SHUT_WR)) becomes close_notify, then
                      shutdown(SHUT_WR) on the TCP connection: the peer may still send, and
                      the program still gets it (TLS 1.3 half-close; OpenSSL reads after
                      its own close_notify)
  a network write failing (peer gone) shuts the program's end for reading, so its writes
  fail (EPIPE) as they would on a dead TCP connection; a program end that is gone makes
  the relay discard what comes from the network.
The relay ends when the program's direction is finished and either the network's is too
or the program has exited; it then waits up to LINGER seconds for the peer's EOF (reading
and discarding), so that closing never resets a connection whose last bytes are in
flight. -w's idle timeout (nothing moving either way) breaks the connection off.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import ssl
import time

from ucspi.runtime import children, exitcodes, x509

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

LIMIT = 1 << 16    # bytes waiting in one direction before the relay stops reading that side
LINGER = 2.0       # seconds to wait for the peer's EOF after ours
DEFAULT_IDLE = 3600  # ucspi-ssl's -w default
SSL_TIMEOUT = 26     # ucspi-ssl's -T default: seconds for the handshake
_EXTRA_OPTIONS = getattr(ssl, "OP_NO_RENEGOTIATION", 0) | getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)


class Trouble(Exception):
    """A context that cannot be made: the command's fatal error (str(self) says what)."""


def reason(err: BaseException) -> str:
    """What went wrong, in the words of a log line: djb's text for a system error,
    OpenSSL's reason (lower case, no underscores) for a TLS one."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return (err.verify_message or "certificate verify failed").rstrip(".")
    if isinstance(err, ssl.SSLError):
        if isinstance(err, ssl.SSLEOFError):
            return "connection closed"
        if getattr(err, "reason", None):
            return err.reason.lower().replace("_", " ")
        text = err.args[1] if len(err.args) > 1 else (err.args[0] if err.args else str(err))
        return str(text).split(" (_ssl.c")[0]
    if isinstance(err, OSError):
        return exitcodes.error_str(err)
    return str(err) or type(err).__name__


def _pem_certificate(path: str) -> bytes:
    """The DER bytes of the first certificate in a PEM file. Raises OSError, ValueError."""
    with open(path, "rb") as f:
        text = f.read().decode("ascii", "replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError("no certificate")
    return ssl.PEM_cert_to_DER_cert(text[start:stop + len(end)] + "\n")


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None,
                password: str | None) -> bytes:
    """certfile (a chain: the certificate first) and its key into context; the
    certificate's DER. Raises Trouble in ucspi-ssl's words."""
    try:
        der = _pem_certificate(certfile)
        x509.Certificate(der)
    except (OSError, ValueError) as err:
        raise Trouble(f"unable to load certificate: {certfile}: "
                      f"{reason(err) if isinstance(err, OSError) else 'no certificate'}") from None
    try:
        # a password, even empty, keeps OpenSSL from prompting on a terminal
        context.load_cert_chain(certfile, keyfile or None, password or "")
    except ssl.SSLError as err:
        if getattr(err, "reason", None) == "KEY_VALUES_MISMATCH":
            raise Trouble("key does not match certificate") from None
        raise Trouble(f"unable to load key: {keyfile or certfile}") from None
    except OSError as err:
        raise Trouble(f"unable to load key: {keyfile or certfile}: {reason(err)}") from None
    return der


def _ciphers(context: ssl.SSLContext, ciphers: str | None) -> None:
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise Trouble(f"unable to set cipher list: {ciphers}") from None


def _verify_locations(context: ssl.SSLContext, cafiles: list[str], cadir: str | None) -> None:
    for cafile in cafiles:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as err:
            raise Trouble(f"unable to load CA list: {cafile}: {reason(err)}") from None
    if cadir:
        try:
            context.load_verify_locations(capath=cadir)
        except (OSError, ssl.SSLError) as err:
            raise Trouble(f"unable to load CA list: {cadir}: {reason(err)}") from None


def server_context(env, client_certs: bool, password: str | None) -> tuple[ssl.SSLContext, bytes]:
    """sslserver's context from env (a mapping: os.environ) and its certificate's DER.

    CERTCHAINFILE (before CERTFILE): the certificate, then its chain, PEM; KEYFILE: its key
    (unset or empty: in the certificate's file); password: for an encrypted key (-3).
    client_certs (-z, -m): a client certificate is required and verified against CAFILE,
    CADIR and CCAFILE (at least one must be set). DHFILE: DH parameters; CIPHERS: the
    OpenSSL cipher list (TLS 1.2 and below). Raises Trouble."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= _EXTRA_OPTIONS
    certfile = env.get("CERTCHAINFILE") or env.get("CERTFILE")
    if not certfile:
        raise Trouble("unable to load certificate: CERTFILE is not set")
    der = _load_chain(context, certfile, env.get("KEYFILE"), password)
    if client_certs:
        cafiles = [env[name] for name in ("CAFILE", "CCAFILE") if env.get(name) and env[name] != "-"]
        cadir = env.get("CADIR") or None
        if not cafiles and not cadir:
            raise Trouble("unable to load CA list: set CCAFILE, CAFILE or CADIR")
        _verify_locations(context, cafiles, cadir)
        context.verify_mode = ssl.CERT_REQUIRED
    if env.get("DHFILE"):
        try:
            context.load_dh_params(env["DHFILE"])
        except (OSError, ssl.SSLError) as err:
            raise Trouble(f"unable to set DH parameters: {env['DHFILE']}: {reason(err)}") from None
    _ciphers(context, env.get("CIPHERS"))
    return context, der


def client_context(cafile: str | None, cadir: str | None, certfile: str | None,
                   keyfile: str | None, password: str | None, ciphers: str | None,
                   verify: bool, check_name: bool) -> tuple[ssl.SSLContext, bytes | None]:
    """sslclient's context and its own certificate's DER (None without one): the server's
    certificate verified against cafile/cadir (neither: the system's CAs) unless not
    verify (-X), its name checked unless not check_name (-N). Raises Trouble."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options |= _EXTRA_OPTIONS
    context.check_hostname = verify and check_name
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if verify:
        if cafile or cadir:
            _verify_locations(context, [cafile] if cafile else [], cadir)
        else:
            context.load_default_certs()
    der = _load_chain(context, certfile, keyfile, password) if certfile else None
    _ciphers(context, ciphers)
    return context, der


def read_password(fd: int = 3) -> str:
    """ucspi-ssl's -3: a NUL-terminated password read from fd, which is then closed."""
    data = bytearray()
    try:
        while b"\0" not in data:
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class Channel:
    """A TLS connection over sock, through memory BIOs; out holds the ciphertext not yet
    sent. The socket is made non-blocking."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None):
        sock.setblocking(False)
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname)
        self.out = bytearray()
        self.context = context

    def collect(self) -> None:
        """What the TLS engine wrote joins out."""
        if self.outgoing.pending:
            self.out += self.outgoing.read()

    def handshake(self, timeout: float) -> None:
        """The TLS handshake, within timeout seconds. Raises ssl.SSLError (TLS refused,
        certificate not accepted...), TimeoutError, OSError (the connection broke)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError:
                self.collect()  # the alert, for the peer to learn why
                self._flush(time.monotonic() + 1, quiet=True)
                raise
            self.collect()
            self._flush(deadline)
            if done:
                return
            self._wait(deadline, read=True)
            try:
                data = self.sock.recv(LIMIT)
            except BlockingIOError:
                continue
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()

    def _wait(self, deadline: float, read: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not _ready(self.sock, read, left):
            raise TimeoutError(errno.ETIMEDOUT, "timed out")

    def _flush(self, deadline: float, quiet: bool = False) -> None:
        try:
            while self.out:
                try:
                    del self.out[:self.sock.send(self.out)]
                except BlockingIOError:
                    self._wait(deadline, read=False)
        except OSError:
            if not quiet:
                raise

    def abort(self) -> None:
        """Close the connection now (what the engine queued, an alert, sent if it can be)."""
        self.collect()
        self._flush(time.monotonic(), quiet=True)
        self.sock.close()


def _ready(sock, read: bool, timeout: float) -> bool:
    r, w, _ = select.select([sock] if read else [], [] if read else [sock], [], timeout)
    return bool(r or w)


def _pidfd(pid: int | None):
    """A descriptor readable once pid has exited (None: poll instead)."""
    if pid is None or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _reap(pid: int) -> int | None:
    """pid's wait status if it has ended (reaped now), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None


def _shut(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class Relay:
    """The loop between channel (the network, TLS) and local (the program's end of a
    socketpair, plaintext); pid: the program, whose end it notices (its status kept in
    status). trouble says why the connection was broken off (None: a clean end); reset
    is true when the peer merely went away (a reset, not a TLS error)."""

    def __init__(self, channel: Channel, local: socket.socket, pid: int | None = None,
                 idle: float = DEFAULT_IDLE):
        self.channel = channel
        self.local = local
        self.pid = pid
        self.idle = idle if idle > 0 else DEFAULT_IDLE
        self.status: int | None = None
        self.trouble: str | None = None
        self.reset = False

    def run(self, banner: bytes = b"") -> None:
        """Relay until both directions are done (see the module's docstring); both sockets
        are closed when it returns."""
        ch, local = self.channel, self.local
        local.setblocking(False)
        pidfd = _pidfd(self.pid)
        try:
            if banner:
                ch.tls.write(banner)
                ch.collect()
            self._loop(pidfd)
        except ssl.SSLError as err:
            self.trouble = reason(err)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            if self.trouble is not None:
                ch.abort()
            else:
                self._linger()
                ch.sock.close()
            _shut(local, socket.SHUT_RDWR)
            local.close()

    def _loop(self, pidfd) -> None:
        ch, tls, local = self.channel, self.channel.tls, self.local
        sock = ch.sock
        to_local = bytearray()
        self.net_in = True         # the network may still send
        net_out = True             # the network still takes what is sent
        tls_end = False            # the peer's data has ended
        local_out_done = False     # the program has been told of that end (or is gone)
        local_in = True            # the program may still send
        notified = False           # close_notify queued
        shut = False               # the TCP connection shut for writing
        last = time.monotonic()
        while True:
            if not tls_end:
                while len(to_local) < LIMIT:
                    try:
                        data = tls.read(LIMIT - len(to_local))
                    except ssl.SSLWantReadError:
                        break
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        data = b""
                    if not data:
                        tls_end = True
                        break
                    if not local_out_done:
                        to_local += data
                ch.collect()
            if tls_end and not to_local and not local_out_done:
                _shut(local, socket.SHUT_WR)
                local_out_done = True
            # close_notify once nothing undecrypted waits: OpenSSL's wait for the peer's
            # close_notify (the second SSL_shutdown that unwrap makes) discards a data
            # record it finds; SSL_read after our close_notify still reads them.
            if (not local_in and not notified and net_out
                    and (tls_end or not (ch.incoming.pending or tls.pending()))):
                try:
                    tls.unwrap()
                except ssl.SSLError:
                    pass  # close_notify is queued; the peer's comes (or not) later
                ch.collect()
                notified = True
            if notified and not ch.out and not shut and net_out:
                _shut(sock, socket.SHUT_WR)
                shut = True
            if (shut or not net_out) and (local_out_done or self.status is not None):
                return
            read, write = [], []
            if self.net_in and not tls_end and len(to_local) < LIMIT and ch.incoming.pending < LIMIT:
                read.append(sock)
            if ch.out and net_out:
                write.append(sock)
            if local_in and len(ch.out) < LIMIT:
                read.append(local)
            if to_local:
                write.append(local)
            if pidfd is not None and self.status is None:
                read.append(pidfd)
            left = last + self.idle - time.monotonic()
            if left <= 0:
                self.trouble = "timed out"
                return
            if self.status is None and self.pid is not None and pidfd is None:
                left = min(left, 0.2)
            try:
                r, w, _ = select.select(read, write, [], left)
            except InterruptedError:
                continue
            if self.status is None and self.pid is not None and (pidfd is None or pidfd in r):
                self.status = _reap(self.pid)
            if sock in r:
                try:
                    data = sock.recv(LIMIT)
                except BlockingIOError:
                    data = None
                except OSError:
                    data, net_out, self.reset = b"", False, True
                    ch.out.clear()
                if data is not None:
                    if data:
                        ch.incoming.write(data)
                        last = time.monotonic()
                    else:
                        self.net_in = False
                        ch.incoming.write_eof()
            if sock in w and net_out and ch.out:
                try:
                    del ch.out[:sock.send(ch.out)]
                    last = time.monotonic()
                except BlockingIOError:
                    pass
                except OSError:
                    net_out, self.reset = False, True
                    ch.out.clear()
            if not net_out and local_in:
                _shut(local, socket.SHUT_RD)  # the program's writes fail, as on a dead connection
                local_in = False
            if local in w and to_local:
                try:
                    del to_local[:local.send(to_local)]
                    last = time.monotonic()
                except BlockingIOError:
                    pass
                except OSError:
                    to_local.clear()
                    local_out_done = True
            if local in r and local_in:
                try:
                    data = local.recv(LIMIT)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is not None:
                    if not data:
                        local_in = False
                    elif net_out:
                        tls.write(data)
                        ch.collect()
                        last = time.monotonic()

    def _linger(self) -> None:
        """After our end: read and discard until the peer's EOF, at most LINGER seconds."""
        sock = self.channel.sock
        deadline = time.monotonic() + LINGER
        while self.net_in and not self.reset:
            left = deadline - time.monotonic()
            if left <= 0 or not _ready(sock, True, left):
                return
            try:
                if not sock.recv(LIMIT):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return


def _cipher_bits(context: ssl.SSLContext, name: str, used: int) -> int:
    for cipher in context.get_ciphers():
        if cipher.get("name") == name:
            return cipher.get("alg_bits") or used
    return used


def environment(channel: Channel, server_side: bool, own_der: bytes | None) -> dict[str, str]:
    """The SSL_* variables of an established channel, as ucspi-ssl's -s sets them (and
    UCSPI-TLS's Y answers): the session's, then this side's certificate's (own_der), then
    the peer's (SSL_SERVER_* for the server's certificate, SSL_CLIENT_* for the
    client's); the server adds SSL_CLIENT_VERIFY (SUCCESS: a verified certificate, NONE)."""
    tls = channel.tls
    env = {"SSL_PROTOCOL": tls.version() or ""}
    session = getattr(tls, "session", None)
    env["SSL_SESSION_ID"] = session.id.hex() if session is not None else ""
    name, _, bits = tls.cipher() or ("", "", 0)
    bits = bits or 0
    env["SSL_CIPHER"] = name
    env["SSL_CIPHER_EXPORT"] = "true" if bits < 56 else "false"
    env["SSL_CIPHER_USEKEYSIZE"] = str(bits)
    env["SSL_CIPHER_ALGKEYSIZE"] = str(_cipher_bits(channel.context, name, bits))
    env["SSL_VERSION_INTERFACE"] = "ucspi-ssl"
    env["SSL_VERSION_LIBRARY"] = ssl.OPENSSL_VERSION
    own, peer = ("SSL_SERVER", "SSL_CLIENT") if server_side else ("SSL_CLIENT", "SSL_SERVER")
    if own_der:
        env.update(x509.fields(own_der, own))
    peer_der = tls.getpeercert(binary_form=True)
    if peer_der:
        try:
            env.update(x509.fields(peer_der, peer))
        except ValueError:
            env[f"{peer}_CERT"] = ssl.DER_cert_to_PEM_cert(peer_der)
    if server_side:
        env["SSL_CLIENT_VERIFY"] = "SUCCESS" if peer_der else "NONE"
    return env


def encode_environment(env: dict[str, str]) -> bytes:
    """UCSPI-TLS's answer to Y: NAME=value NUL each, then one more NUL."""
    return b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in env.items()) + b"\0"


def ucspitls_wait(control: socket.socket, pid: int) -> tuple[str | None, int | None]:
    """Wait for the program (pid) to ask for TLS on its control socket: ('y' or 'Y',
    None), or (None, status) when it closed the socket (status None) or exited (its
    wait status) first. Any other byte is ignored."""
    pidfd = _pidfd(pid)
    try:
        while True:
            watch = [control] + ([pidfd] if pidfd is not None else [])
            try:
                r, _, _ = select.select(watch, [], [], None if pidfd is not None else 0.2)
            except InterruptedError:
                continue
            if control in r:
                try:
                    data = control.recv(64)
                except OSError:
                    data = b""
                if not data:
                    return None, None
                for command in ("y", "Y"):
                    if command.encode() in data:
                        return command, None
            if pidfd is None or pidfd in r:
                status = _reap(pid)
                if status is not None:
                    return None, status
    finally:
        if pidfd is not None:
            os.close(pidfd)


def ucspitls_start(control: socket.socket, pid: int, handshake: Callable[[], Channel],
                   environment_of: Callable[[Channel], dict[str, str]],
                   closing: tuple = ()) -> Channel:
    """The UCSPI-TLS side of sslserver -n and sslclient -y once the program runs: wait
    for its command on control; if none comes (it closed the socket or ended), close
    closing and control and exit as the program did. Else handshake() (on SystemExit:
    closing and control closed, the program terminated and waited for, then re-raised);
    for `Y`, environment_of(channel) goes back on control. Returns the channel."""
    command, status = ucspitls_wait(control, pid)
    if command is None:
        for item in (*closing, control):
            item.close()
        exit_as(status if status is not None else wait_child(pid))
    try:
        channel = handshake()
    except SystemExit:
        for item in (*closing, control):
            item.close()
        terminate(pid)
        wait_child(pid)
        raise
    if command == "Y":
        ucspitls_answer(control, environment_of(channel))
    control.close()
    return channel


def ucspitls_answer(control: socket.socket, env: dict[str, str]) -> None:
    """Send Y's answer; a program that has gone does not matter."""
    try:
        control.setblocking(True)
        control.sendall(encode_environment(env))
    except OSError:
        pass


def fork_child(run: Callable[[], object]) -> int:
    """fork; the child runs run(), which must end the process (exec, a warm program's
    exit); if it returns or raises, the child exits 111 without unwinding the parent's
    frames. Returns the child's pid. Raises OSError."""
    from ucspi.runtime import launch
    launch.flush_std()
    pid = os.fork()
    if pid == 0:
        code = 111
        try:
            run()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 111
        except BaseException:
            import traceback
            traceback.print_exc()
        launch.flush_std()
        os._exit(code)
    return pid


def terminate(pid: int) -> None:
    """SIGTERM to the program, whose connection has broken off (as ucspi-ssl does)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass


def wait_child(pid: int) -> int:
    """pid's wait status, waiting as long as it takes (0 when it is not ours to wait for)."""
    status = children.wait_status(pid)
    return 0 if status is None else status


def exit_as(status: int) -> NoReturn:
    """End this process as the program ended (status: its wait status): the same exit
    code, or death by the same signal (without a core dump of its own)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        except (ImportError, ValueError, OSError):
            pass
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            except (OSError, ValueError):
                pass
        try:
            os.kill(os.getpid(), sig)
        except OSError:
            pass
        os._exit(128 + sig)
    raise SystemExit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 111)
