"""The agent's HTTP API, on `<server address>:8780`; every request carries the secret.

Standard library `http.server` in threads rather than FastAPI + uvicorn: the agent runs
inside every server's memory cgroup, it serves a handful of JSON calls from one client
(the control plane), and the standard library costs no imports, no event loop and no
extra dependency inside the server.

    GET  /status         200 {"service_status", "datastore"?, "version"?, "error"?}
    POST /prepare        202 started | 200 already prepared | 400 bad body | 503 busy
    POST /stop           200 {"service_status"} | 409 nothing prepared | 500 {"error"}
    POST /start          the same
    POST /restart        the same
    POST /resize_fs      200 {"service_status", "size_bytes", "free_bytes"}
    GET  /root-password  200 {"password"} once after a prepare, then 404
    POST /root           {"password"?}: 200 {"name", "password"}: the superuser's new
                         password (the body's, or a random one), kept nowhere
    GET  /replication    200 {"role", "lsn", "timeline", "receive_lsn", "replicas": [{"slot",
                         "active", "address", "state", "lag_bytes"}]} (LSNs as integers)
    POST /promote        200 once the replica takes writes | 409 on a primary
    POST /follow         {"role": "replica", "password", "primary_address", "primary_port",
                         "slot"}: 200 once it streams from that primary | 400 bad body
    POST /replication/source  {"role": "primary", "password"}: 200 once replicas may stream
                         from this primary (the replication role made) | 409 on a replica
    POST /replication/slots/drop  {"slot"}: 200 (also when there was no such slot)
    GET  /stopped_lsn    200 {"lsn"} of a cleanly stopped datastore | 409 running or crashed
    POST /archive        {"repository": {"stanza", "options", "files"}}: 200 once WAL goes
                         into that stanza (a replica leaving its group gets its own)
    GET  /databases      200 {"databases": [{"name", "character_set", "collate"}]}
    POST /databases      {"databases": [{"name", "character_set"?, "collate"?}]}
    POST /databases/delete  {"name"}
    GET  /users          200 {"users": [{"name", "databases": [names]}]}
    POST /users          {"users": [{"name", "password", "databases": [names]}]}
    POST /users/delete   {"name"}; /users/update {"name", "new_name"?, "password"?};
                         /users/passwords {"users": [{"name", "password"}]};
                         /users/grant {"name", "databases": [names]};
                         /users/revoke {"name", "database"}
    POST /root/disable   the superuser's password taken away
                         (these answer 409 {"reason": "exists"} for a name that exists,
                         404 {"reason": "not_found"} for one that does not)

Anything without the right `X-Cellar-Guest-Secret` is 401. Request bodies are never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cellar.guest.agent import Agent, Reply
from cellar.guest.protocol import SECRET_HEADER

log = logging.getLogger("cellar.guest.http")

MAX_BODY = 1 << 20


def _root_password(agent: Agent, _body: Any) -> Reply:
    password = agent.take_root_password()
    if password is None:
        return 404, {"error": "no root password to hand out (read already, or never made)"}
    return 200, {"password": password}


ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/status"): lambda agent, _body: agent.status(),
    ("POST", "/prepare"): lambda agent, body: agent.prepare(body),
    ("POST", "/stop"): lambda agent, _body: agent.command("stop"),
    ("POST", "/start"): lambda agent, _body: agent.command("start"),
    ("POST", "/restart"): lambda agent, _body: agent.command("restart"),
    ("POST", "/resize_fs"): lambda agent, _body: agent.command("resize_fs"),
    ("GET", "/root-password"): _root_password,
    ("POST", "/root"): lambda agent, body: agent.command("root", body),
    ("GET", "/replication"): lambda agent, _body: agent.command("replication"),
    ("POST", "/promote"): lambda agent, _body: agent.command("promote"),
    ("POST", "/follow"): lambda agent, body: agent.command("follow", body),
    ("POST", "/replication/source"): lambda agent, body: agent.command("make_source", body),
    ("POST", "/replication/slots/drop"): lambda agent, body: agent.command("drop_slot", body),
    ("GET", "/stopped_lsn"): lambda agent, _body: agent.command("stopped_lsn"),
    ("POST", "/archive"): lambda agent, body: agent.command("archive_into", body),
    # Users and databases (`cellar.guest.accounts`).
    ("GET", "/databases"): lambda agent, _body: agent.command("databases"),
    ("POST", "/databases"): lambda agent, body: agent.command("create_databases", body),
    ("POST", "/databases/delete"): lambda agent, body: agent.command("delete_database", body),
    ("GET", "/users"): lambda agent, _body: agent.command("users"),
    ("POST", "/users"): lambda agent, body: agent.command("create_users", body),
    ("POST", "/users/delete"): lambda agent, body: agent.command("delete_user", body),
    ("POST", "/users/update"): lambda agent, body: agent.command("update_user", body),
    ("POST", "/users/passwords"): lambda agent, body: agent.command("change_passwords", body),
    ("POST", "/users/grant"): lambda agent, body: agent.command("grant", body),
    ("POST", "/users/revoke"): lambda agent, body: agent.command("revoke", body),
    ("POST", "/root/disable"): lambda agent, _body: agent.command("disable_root"),
    ("POST", "/overrides"): lambda agent, body: agent.command("update_overrides", body),
    ("POST", "/overrides/unassign"): lambda agent, _b: agent.command("unassign_configuration"),
    ("GET", "/configuration"): lambda agent, _body: agent.command("configuration"),
}


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, agent: Agent, address: str, port: int) -> None:
        self.agent = agent
        super().__init__((address, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the address up in reverse DNS (socket.getfqdn); a
        # server's namespace reaches no resolver, so that alone took 10 s per boot.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cellar-guest"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        server = self.server
        assert isinstance(server, AgentServer)
        agent = server.agent
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": "body too large"}, close=True)
            return
        raw = self.rfile.read(length) if length else b""
        given = self.headers.get(SECRET_HEADER) or ""
        if not hmac.compare_digest(given.encode(), agent.drive.secret.encode()):
            self._reply(401, {"error": f"a valid {SECRET_HEADER} header is needed"})
            return
        route = ROUTES.get((method, self.path.split("?", 1)[0]))
        if route is None:
            self._reply(404, {"error": f"no {method} {self.path}"})
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._reply(400, {"error": "the body is not JSON"})
            return
        try:
            code, payload = route(agent, body)
        except Exception:
            log.exception("%s %s failed", method, self.path)
            code, payload = 500, {"error": "the agent failed; see its log"}
        self._reply(code, payload)

    def _reply(self, code: int, payload: dict[str, Any], *, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only: no headers (the secret), no bodies (passwords).
        log.debug("%s " + format, self.address_string(), *args)
