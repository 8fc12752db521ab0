"""An in-process DNS responder for tests: a small zone served on 127.0.0.x:53.

Programs under test find it through $DNSCACHEIP (djbdns clients, ucspi.runtime.dns_lookup), so no
test ever asks the system resolver. Port 53 needs root: `DNSServer.start` skips the test
visibly otherwise.

    zone = {("4.3.2.1.rbl.test", "TXT"): ['"listed: see http://rbl.test/"'],
            ("4.3.2.1.anti.test", "A"): ["127.0.0.2"]}
    with DNSServer(zone) as dns:          # or dns = DNSServer(zone).start() ... dns.stop()
        env["DNSCACHEIP"] = dns.ip
        ...
        dns.queries                        # [(name, type), ...] in the order asked

Names are compared lowercase without the final dot; records are zone-file text for their
type. A name absent from the zone gets NXDOMAIN; a name present under another type gets an
empty NOERROR answer. `rcodes[name] = dns.rcode.SERVFAIL` answers that name with the code
given; `silent = True` makes the server read queries and never answer (a timeout);
`truncate_udp = True` answers every UDP query with TC set and no records, so the client
must come back over TCP (served on the same address and port).
"""

import os
import random
import select
import socket
import struct
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

PORT = 53
_MAX_TCP_CLIENTS = 16


def _key(name) -> str:
    text = name.to_text() if hasattr(name, "to_text") else str(name)
    return text.rstrip(".").lower()


def _bind_pair(port: int) -> tuple[str, socket.socket, socket.socket]:
    """UDP and TCP sockets bound to one free 127.0.0.x:port (tests may run side by side)."""
    candidates = random.sample(range(2, 255), 40)
    last = None
    for x in candidates:
        ip = f"127.0.0.{x}"
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((ip, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((ip, port))
            tcp.listen(8)
            return ip, udp, tcp
        except OSError as err:
            udp.close()
            tcp.close()
            last = err
            if err.errno in (13, 1):  # EACCES/EPERM: not root, no point trying others
                break
    raise last


class DNSServer:
    """The responder; state (zone, rcodes, silent, queries) may be changed while it runs."""

    def __init__(self, zone: dict | None = None, port: int = PORT):
        self.zone = {(_key(name), rtype.upper()): list(records)
                     for (name, rtype), records in (zone or {}).items()}
        self.rcodes: dict[str, int] = {}
        self.silent = False
        self.truncate_udp = False
        self.queries: list[tuple[str, str]] = []
        self.tcp_queries = 0
        self.port = port
        self.ip = ""
        self._thread = None
        self._wake_r = self._wake_w = None
        self._udp = self._tcp = None
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> "DNSServer":
        """Bind 127.0.0.x:53 and serve in a thread; visible skip when that needs root."""
        if self.port < 1024 and os.geteuid() != 0:
            pytest.skip("fake DNS server needs root to bind 127.0.0.x:53 ($DNSCACHEIP has no port)")
        try:
            self.ip, self._udp, self._tcp = _bind_pair(self.port)
        except PermissionError:
            pytest.skip("fake DNS server cannot bind 127.0.0.x:53 (permission denied)")
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="dns_server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for s in (self._udp, self._tcp):
            s.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- zone edits -------------------------------------------------------------------
    def put(self, name: str, rtype: str, records: list[str]) -> None:
        with self._lock:
            self.zone[(_key(name), rtype.upper())] = list(records)

    def names(self) -> set[str]:
        return {name for name, _ in self.zone}

    # -- answering --------------------------------------------------------------------
    def answer(self, wire: bytes, over_tcp: bool) -> bytes | None:
        """The reply to one query in wire format (None: stay silent / unparseable)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = _key(question.name)
        rtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rtype))
            if over_tcp:
                self.tcp_queries += 1
            if self.silent:
                return None
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if name in self.rcodes:
                response.set_rcode(self.rcodes[name])
            elif name not in self.names():
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif self.truncate_udp and not over_tcp:
                response.flags |= dns.flags.TC
            else:
                records = self.zone.get((name, rtype), [])
                if records:
                    rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
                    for text in records:
                        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text), ttl=60)
                    response.answer.append(rrset)
        wire = response.to_wire(max_size=65535, want_shuffle=False)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        if not over_tcp and len(wire) > limit:
            # Too big for UDP: say so, and let the client ask again over TCP.
            response.answer = []
            response.flags |= dns.flags.TC
            wire = response.to_wire(want_shuffle=False)
        return wire

    def _serve(self) -> None:
        clients: dict[socket.socket, bytes] = {}
        while True:
            watched = [self._wake_r, self._udp, self._tcp, *clients]
            ready, _, _ = select.select(watched, [], [], 5)
            if self._wake_r in ready:
                break
            if self._udp in ready:
                try:
                    wire, peer = self._udp.recvfrom(65535)
                except OSError:
                    wire = b""
                if wire:
                    reply = self.answer(wire, over_tcp=False)
                    if reply is not None:
                        try:
                            self._udp.sendto(reply, peer)
                        except OSError:
                            pass
            if self._tcp in ready:
                try:
                    conn, _ = self._tcp.accept()
                    if len(clients) < _MAX_TCP_CLIENTS:
                        clients[conn] = b""
                    else:
                        conn.close()
                except OSError:
                    pass
            for conn in [c for c in ready if c in clients]:
                try:
                    data = conn.recv(65535)
                except OSError:
                    data = b""
                if not data:
                    conn.close()
                    del clients[conn]
                    continue
                buf = clients[conn] + data
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    size = struct.unpack("!H", buf[:2])[0]
                    wire, buf = buf[2:2 + size], buf[2 + size:]
                    reply = self.answer(wire, over_tcp=True)
                    if reply is not None:
                        try:
                            conn.sendall(struct.pack("!H", len(reply)) + reply)
                        except OSError:
                            pass
                clients[conn] = buf
        for conn in clients:
            conn.close()
