"""The local cloud's DNS: a real server on loopback that answers from the state file.

Records are rows of kind `record` in the local cloud's `CloudState`, written by
`cellar.drivers.local.dns` in whichever process runs the driver (the task managers). The
server reads them on every query, so a change is served at once, with no reload and no
cache. The row's `name` is the canonical name (lower case, no final dot); its data holds
the name as given, the type, the data and the TTL.

The server is authoritative for one zone (`settings.dns_zone`) only:

- A, AAAA, CNAME and TXT records are answered with their TTL; a CNAME is followed
  within the zone, and ANY returns every record of the name;
- a name of the zone that has no record is NXDOMAIN (unless it is the apex or has
  records below it: then NOERROR with no answer, as for a name without the asked type);
- a name outside the zone, or a class other than IN, is REFUSED: it does not recurse;
- there is no SOA, so resolvers do not cache the negative answers;
- a failure to read the state is SERVFAIL, logged.

It listens on UDP and TCP at 127.0.0.1:`settings.local_dns_port` (port 0: a free port,
the same for both, see `DNSServerHandle.port`). Each protocol is served by one thread, so
each keeps one SQLite connection; a TCP client has `TCP_TIMEOUT_S` to send its query.
Needs no root unless the port is below 1024.
"""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from dnslib import AAAA, CLASS, CNAME, OPCODE, QTYPE, RCODE, RR, TXT, A, DNSLabel, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from cellar.config import Settings
from cellar.localcloud.state import CloudState
from cellar.localcloud.system import LocalCloudError

_log = logging.getLogger(__name__)

RECORD = "record"
SERVED_TYPES = ("A", "AAAA", "CNAME", "TXT")
TCP_TIMEOUT_S = 2.0
_MAX_CNAME_CHAIN = 8
_CLASS_ANY = 255  # dnslib names it "*"
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_RDATA: dict[str, Any] = {
    "A": A,
    "AAAA": AAAA,
    "CNAME": CNAME,
    "TXT": lambda data: TXT(data.encode()),
}


def state_path(settings: Settings) -> Path:
    """The local cloud's state file, where the records live."""
    return settings.local_root / "state.sqlite"


def canonical_name(name: str) -> str:
    """`name` as records are keyed: lower case, without the final dot."""
    return name.rstrip(".").lower()


def valid_hostname(name: str) -> bool:
    """Dot-separated labels of letters, digits, `-` and `_`, 1 to 63 each, 253 in all."""
    name = canonical_name(name)
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def in_zone(name: str, zone: str) -> bool:
    """Whether `name` is the zone's apex or below it (case and final dot ignored)."""
    name, zone = canonical_name(name), canonical_name(zone)
    return name == zone or name.endswith("." + zone)


class ZoneResolver:
    """The dnslib resolver: each query is answered from the state file as it is then."""

    def __init__(self, state: CloudState, zone: str) -> None:
        self.state = state
        self.zone = canonical_name(zone)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        try:
            return self._resolve(request)
        except Exception:
            _log.exception("The local DNS could not answer %s", request.q.qname)
            reply = request.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
            return reply

    def _resolve(self, request: DNSRecord) -> DNSRecord:
        reply = request.reply(ra=0, aa=1)
        if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
            reply.header.aa = 0
            reply.header.rcode = (
                RCODE.NOTIMP if request.header.opcode != OPCODE.QUERY else RCODE.FORMERR
            )
            return reply
        question = request.q
        name = canonical_name(str(question.qname))
        if question.qclass not in (CLASS.IN, _CLASS_ANY) or not in_zone(name, self.zone):
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return reply
        self._answer(reply, question.qname, question.qtype)
        return reply

    def _answer(self, reply: DNSRecord, qname: DNSLabel, qtype: int) -> None:
        """Add the records of `qname` of type `qtype`, following CNAMEs within the zone."""
        for _ in range(_MAX_CNAME_CHAIN):
            name = canonical_name(str(qname))
            rows = [row.data for row in self.state.find(RECORD, name)]
            if not rows:
                if not self._exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                return
            wanted = [r for r in rows if qtype == QTYPE.ANY or getattr(QTYPE, r["type"]) == qtype]
            cnames = [r for r in rows if r["type"] == "CNAME"]
            if wanted or not cnames:
                for row in wanted:
                    reply.add_answer(*_rrs(qname, row))
                return
            reply.add_answer(_rr(qname, cnames[0]))
            target = cnames[0]["data"]
            if not in_zone(target, self.zone):
                return
            qname = DNSLabel(target)

    def _exists(self, name: str) -> bool:
        """The apex and the names with records below them exist even without records."""
        if name == self.zone:
            return True
        suffix = "." + name
        return any(row.name.endswith(suffix) for row in self.state.list(RECORD))


def _rrs(qname: DNSLabel, row: dict[str, Any]) -> list[RR]:
    """One answer per address of an A or AAAA record set (its data: addresses, spaced)."""
    if row["type"] not in ("A", "AAAA"):
        return [_rr(qname, row)]
    return [_rr(qname, {**row, "data": address}) for address in str(row["data"]).split()]


def _rr(qname: DNSLabel, row: dict[str, Any]) -> RR:
    rtype = row["type"]
    rdata = _RDATA[rtype](row["data"])
    return RR(qname, getattr(QTYPE, rtype), CLASS.IN, int(row["ttl"]), rdata)


def _bound_port(server: socketserver.TCPServer) -> int:
    return int(server.socket.getsockname()[1])


class _UDPServer(socketserver.UDPServer):
    # dnslib reuses addresses; for UDP that would let two servers share the port silently.
    allow_reuse_address = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("DNS request from %s failed", client_address, exc_info=True)


class _TCPServer(socketserver.TCPServer):
    allow_reuse_address = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        conn.settimeout(TCP_TIMEOUT_S)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("DNS request from %s failed", client_address, exc_info=True)


class DNSServerHandle:
    """The local cloud's DNS server (UDP and TCP threads) with its start and stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        state: CloudState | None = None,
        address: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.address = address
        self.zone = canonical_name(settings.dns_zone)
        self.resolver = ZoneResolver(
            state if state is not None else CloudState(state_path(settings)), self.zone
        )
        self._requested_port = settings.local_dns_port if port is None else port
        self._port = self._requested_port
        self._servers: list[socketserver.TCPServer] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        """The port both protocols listen on (the bound one once started, if asked for 0)."""
        return self._port

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Listen and answer in background threads; a second call does nothing."""
        with self._lock:
            if self._servers:
                return
            self._servers = self._bind()
            self._port = _bound_port(self._servers[0])
            self._stopped.clear()
            for server, protocol in zip(self._servers, ("udp", "tcp"), strict=True):
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"cellar-dns-{protocol}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        _log.info("Local DNS for %s on %s:%d (UDP, TCP)", self.zone, self.address, self.port)

    def stop(self) -> None:
        """Stop answering and close the sockets; it may be started again."""
        with self._lock:
            servers, threads = self._servers, self._threads
            self._servers, self._threads = [], []
            # Both loops notice the request within a poll interval: ask them together.
            stoppers = [threading.Thread(target=server.shutdown) for server in servers]
            for thread in stoppers:
                thread.start()
            for thread in [*stoppers, *threads]:
                thread.join()
            for server in servers:
                server.server_close()
            self._stopped.set()

    def serve_forever(self) -> None:
        """Start, then block until `stop()` (from another thread) or Ctrl-C."""
        self.start()
        try:
            self._stopped.wait()
        finally:
            self.stop()

    def __enter__(self) -> DNSServerHandle:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self) -> list[socketserver.TCPServer]:
        """A UDP and a TCP server on the same port (retried when port 0 gave a busy one)."""
        attempts = 5 if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            udp = self._server(self._requested_port, tcp=False)
            try:
                tcp = self._server(_bound_port(udp), tcp=True)
            except LocalCloudError:
                udp.server_close()
                if attempt == attempts:
                    raise
                continue
            return [udp, tcp]
        raise AssertionError("unreachable")

    def _server(self, port: int, *, tcp: bool) -> socketserver.TCPServer:
        try:
            dns_server = DNSServer(
                self.resolver,
                address=self.address,
                port=port,
                tcp=tcp,
                logger=DNSLogger(prefix=False, logf=_log.debug),
                server=_TCPServer if tcp else _UDPServer,
            )
        except OSError as exc:
            protocol = "TCP" if tcp else "UDP"
            raise LocalCloudError(
                f"The local DNS cannot listen on {self.address}:{port} ({protocol}): {exc}"
            ) from exc
        server: socketserver.TCPServer = dns_server.server
        return server


def run_dns_server(settings: Settings) -> DNSServerHandle:
    """Start the local cloud's DNS server in background threads; `stop()` the handle."""
    handle = DNSServerHandle(settings)
    handle.start()
    return handle
