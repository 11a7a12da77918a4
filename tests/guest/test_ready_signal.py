"""A server made by a stack: the agent signals the stack's wait condition when its
prepare ends, with Heat's token signal (POST + X-Auth-Token), SUCCESS or FAILURE."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from cellar.guest.agent import Agent, ConfigDrive


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str | None, dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers.get("X-Auth-Token"), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[tuple[str, str | None, dict[str, Any]]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/signal/ready", _Recorder.received
    finally:
        server.shutdown()
        server.server_close()


def _agent(tmp_path: Path, url: str | None) -> Agent:
    drive = ConfigDrive(
        instance_id="i-1",
        control_plane_url="http://127.0.0.1:9",
        secret="s",
        server_id="srv",
        address="127.0.0.1",
        data_dir=tmp_path,
        ready_signal_url=url,
        ready_signal_token="tok-1" if url else None,
    )
    return Agent(drive, heartbeat_interval_s=60, check_interval_s=60)


def test_the_agent_signals_success_and_failure_with_the_token(
    tmp_path: Path, endpoint: tuple[str, list[tuple[str, str | None, dict[str, Any]]]]
) -> None:
    url, received = endpoint
    agent = _agent(tmp_path, url)
    agent.signal_ready("SUCCESS", "the datastore is ready")
    agent.signal_ready("FAILURE", "prepare failed: disk full")
    assert [(path, token, body["status"]) for path, token, body in received] == [
        ("/signal/ready", "tok-1", "SUCCESS"),
        ("/signal/ready", "tok-1", "FAILURE"),
    ]
    assert received[1][2]["reason"] == "prepare failed: disk full"


def test_a_server_without_a_stack_signals_nothing(
    tmp_path: Path, endpoint: tuple[str, list[tuple[str, str | None, dict[str, Any]]]]
) -> None:
    _url, received = endpoint
    _agent(tmp_path, None).signal_ready("SUCCESS", "ready")
    assert received == []


class _Busy(_Recorder):
    """Answers 503 to the first two signals (a control plane restarting), then takes it."""

    def do_POST(self) -> None:
        if len(self.received) < 2:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.received.append(("503", None, {}))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_POST()


def test_a_signal_the_control_plane_cannot_take_yet_is_retried(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Busy)
    _Busy.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = _agent(tmp_path, f"http://127.0.0.1:{server.server_port}/signal/ready")
        assert agent.signal_ready("SUCCESS", "the datastore is ready") is True
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _token, _body in _Busy.received] == ["503", "503", "/signal/ready"]


def test_a_refused_signal_is_not_retried(tmp_path: Path) -> None:
    # A server without a POST handler answers 501: final, unlike a 503.
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = _agent(tmp_path, f"http://127.0.0.1:{server.server_port}/nowhere")
        agent.signal_retry_s = 30
        started = time.monotonic()
        assert agent.signal_ready("SUCCESS", "ready") is False
        assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()
