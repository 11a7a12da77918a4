"""The local cloud's DNS server answers real DNS queries from the records of the state file."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from cellar.config import Settings
from cellar.drivers.local.dns import LocalDNSDriver
from cellar.localcloud import dns
from cellar.localcloud.dns import DNSServerHandle, run_dns_server
from cellar.localcloud.system import LocalCloudError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", local_dns_port=0)


@pytest.fixture
def server(settings: Settings) -> Iterator[DNSServerHandle]:
    handle = run_dns_server(settings)
    yield handle
    handle.stop()


@pytest.fixture
def driver(settings: Settings) -> LocalDNSDriver:
    return LocalDNSDriver(settings)


def query(port: int, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    question = DNSRecord.question(name, qtype)
    reply = DNSRecord.parse(question.send("127.0.0.1", port, tcp=tcp, timeout=3.0))
    assert reply.header.id == question.header.id
    return reply


def answers(reply: DNSRecord) -> list[tuple[str, str, str, int]]:
    return [(str(rr.rname), QTYPE[rr.rtype], str(rr.rdata), rr.ttl) for rr in reply.rr]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_record_is_served_then_updated_then_gone(
    server: DNSServerHandle, driver: LocalDNSDriver, tcp: bool
) -> None:
    record = driver.create_record(name="db1.cellar.internal", rtype="A", data="10.251.0.5", ttl=42)
    reply = query(server.port, "db1.cellar.internal", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert answers(reply) == [("db1.cellar.internal.", "A", "10.251.0.5", 42)]

    driver.update_record(record.id, data="10.251.0.6")
    assert answers(query(server.port, "db1.cellar.internal", tcp=tcp)) == [
        ("db1.cellar.internal.", "A", "10.251.0.6", 42)
    ]

    driver.delete_record(record.id)
    reply = query(server.port, "db1.cellar.internal", tcp=tcp)
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_record_set_answers_with_each_address(
    server: DNSServerHandle, driver: LocalDNSDriver, tcp: bool
) -> None:
    driver.create_record(name="pg-ro.cellar.internal", rtype="A", data="10.251.0.6 10.251.0.5")
    found = sorted(answers(query(server.port, "pg-ro.cellar.internal", tcp=tcp)))
    assert found == [
        ("pg-ro.cellar.internal.", "A", "10.251.0.5", 300),
        ("pg-ro.cellar.internal.", "A", "10.251.0.6", 300),
    ]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name", ["db1.example.com", "cellar.internal.evil", "internal"])
def test_names_outside_the_zone_are_refused(server: DNSServerHandle, tcp: bool, name: str) -> None:
    reply = query(server.port, name, tcp=tcp)
    assert reply.header.rcode == RCODE.REFUSED and reply.rr == []


def test_unknown_names_and_types_of_the_zone(
    server: DNSServerHandle, driver: LocalDNSDriver
) -> None:
    driver.create_record(name="a.b.cellar.internal", rtype="A", data="10.251.0.5")
    assert query(server.port, "nothing.cellar.internal").header.rcode == RCODE.NXDOMAIN
    for name, qtype in [
        ("a.b.cellar.internal", "AAAA"),  # the name exists, without this type
        ("b.cellar.internal", "A"),  # a name with records below it exists
        ("cellar.internal", "A"),  # the apex exists
    ]:
        reply = query(server.port, name, qtype)
        assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, []), (name, qtype)


def test_other_types_any_and_case(server: DNSServerHandle, driver: LocalDNSDriver) -> None:
    driver.create_record(name="db.cellar.internal", rtype="A", data="10.251.0.5", ttl=30)
    driver.create_record(name="db.cellar.internal", rtype="AAAA", data="fd00::5", ttl=30)
    driver.create_record(name="db.cellar.internal", rtype="TXT", data="role=primary", ttl=30)
    assert answers(query(server.port, "db.cellar.internal", "AAAA")) == [
        ("db.cellar.internal.", "AAAA", "fd00::5", 30)
    ]
    assert answers(query(server.port, "db.cellar.internal", "TXT")) == [
        ("db.cellar.internal.", "TXT", '"role=primary"', 30)
    ]
    assert len(query(server.port, "db.cellar.internal", "ANY").rr) == 3
    # Names compare without case, and the answer keeps the question's case (0x20).
    assert answers(query(server.port, "DB.Cellar.INTERNAL")) == [
        ("DB.Cellar.INTERNAL.", "A", "10.251.0.5", 30)
    ]


def test_a_cname_is_followed_within_the_zone(
    server: DNSServerHandle, driver: LocalDNSDriver
) -> None:
    driver.create_record(name="db.cellar.internal", rtype="A", data="10.251.0.5", ttl=30)
    driver.create_record(name="primary.cellar.internal", rtype="CNAME", data="db.cellar.internal")
    driver.create_record(name="out.cellar.internal", rtype="CNAME", data="db.example.com")
    assert answers(query(server.port, "primary.cellar.internal")) == [
        ("primary.cellar.internal.", "CNAME", "db.cellar.internal.", 300),
        ("db.cellar.internal.", "A", "10.251.0.5", 30),
    ]
    assert answers(query(server.port, "out.cellar.internal")) == [
        ("out.cellar.internal.", "CNAME", "db.example.com.", 300)
    ]


_WRITER = """
import sys
from pathlib import Path
from cellar.config import Settings
from cellar.drivers.local.dns import LocalDNSDriver
driver = LocalDNSDriver(Settings(state_dir=Path(sys.argv[1])))
driver.create_record(name="other.cellar.internal", rtype="A", data="10.251.0.77", ttl=5)
"""


def test_records_written_by_another_process_are_served_at_once(
    server: DNSServerHandle, settings: Settings
) -> None:
    assert query(server.port, "other.cellar.internal").header.rcode == RCODE.NXDOMAIN
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(settings.state_dir)],
        check=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert answers(query(server.port, "other.cellar.internal", tcp=True)) == [
        ("other.cellar.internal.", "A", "10.251.0.77", 5)
    ]


def test_a_state_it_cannot_read_is_servfail(
    server: DNSServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(kind: str, name: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server.resolver.state, "find", broken)
    assert query(server.port, "db.cellar.internal").header.rcode == RCODE.SERVFAIL


def test_a_silent_tcp_client_does_not_block_the_others(
    server: DNSServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns, "TCP_TIMEOUT_S", 0.2)
    with socket.create_connection(("127.0.0.1", server.port)):
        reply = query(server.port, "db.example.com", tcp=True)
    assert reply.header.rcode == RCODE.REFUSED


def test_the_port_is_one_for_both_protocols_and_freed_on_stop(settings: Settings) -> None:
    first = DNSServerHandle(settings)
    with first:
        port = first.port
        assert port != 0 and first.running
        assert query(port, "x.cellar.internal", tcp=True).header.rcode == RCODE.NXDOMAIN
        busy = DNSServerHandle(settings, port=port)
        with pytest.raises(LocalCloudError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            busy.start()
    assert not first.running
    again = DNSServerHandle(settings, port=port)
    with again:
        assert query(port, "x.cellar.internal").header.rcode == RCODE.NXDOMAIN


def test_serve_forever_returns_on_stop(settings: Settings) -> None:
    handle = DNSServerHandle(settings)
    thread = threading.Thread(target=handle.serve_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not handle.running:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        assert query(handle.port, "x.cellar.internal").header.rcode == RCODE.NXDOMAIN
    finally:
        handle.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
