"""The DNS contract: records, one per name and type."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_support import missing_id, unique

from cellar.drivers.base import InvalidRequest
from cellar.drivers.dns.base import RecordExists, RecordNotFound, record_set, set_addresses
from cellar.drivers.registry import Services


def hostname() -> str:
    return f"{unique('host')}.cellar.internal"


class DNSContract:
    def test_create_a_record(self, services: Services) -> None:
        name = hostname()
        created = services.dns.create_record(name=name, rtype="A", data="10.99.0.7", ttl=60)
        record = services.dns.get_record(created.id)
        assert (record.name, record.type, record.data, record.ttl) == (name, "A", "10.99.0.7", 60)
        assert record.id in {r.id for r in services.dns.list_records()}
        found = services.dns.find_record(name, "A")
        assert found is not None and found.id == record.id

    def test_find_record_by_unknown_name_or_type(self, services: Services) -> None:
        name = hostname()
        services.dns.create_record(name=name, rtype="A", data="10.99.0.7")
        assert services.dns.find_record(hostname(), "A") is None
        assert services.dns.find_record(name, "TXT") is None

    def test_update_a_record(self, services: Services) -> None:
        created = services.dns.create_record(name=hostname(), rtype="A", data="10.99.0.7")
        updated = services.dns.update_record(created.id, data="10.99.0.8")
        assert (updated.id, updated.data) == (created.id, "10.99.0.8")
        assert services.dns.get_record(created.id).data == "10.99.0.8"

    def test_delete_a_record(self, services: Services) -> None:
        created = services.dns.create_record(name=hostname(), rtype="A", data="10.99.0.7")
        services.dns.delete_record(created.id)
        with pytest.raises(RecordNotFound):
            services.dns.get_record(created.id)
        assert services.dns.find_record(created.name, "A") is None

    @pytest.mark.parametrize("operation", ["get", "update", "delete"])
    def test_unknown_record_is_refused(self, services: Services, operation: str) -> None:
        dns, record_id = services.dns, missing_id()
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: dns.get_record(record_id),
            "update": lambda: dns.update_record(record_id, data="10.99.0.9"),
            "delete": lambda: dns.delete_record(record_id),
        }
        with pytest.raises(RecordNotFound) as caught:
            calls[operation]()
        assert caught.value.record_id == record_id

    def test_a_duplicate_name_and_type_is_refused(self, services: Services) -> None:
        name = hostname()
        first = services.dns.create_record(name=name, rtype="A", data="10.99.0.7")
        with pytest.raises(RecordExists) as caught:
            services.dns.create_record(name=name, rtype="A", data="10.99.0.8")
        assert caught.value.record_name == name
        found = services.dns.find_record(name, "A")
        assert found is not None and (found.id, found.data) == (first.id, "10.99.0.7")

    def test_an_a_record_set_holds_several_addresses(self, services: Services) -> None:
        name = hostname()
        data = record_set(["10.99.0.9", "10.99.0.7", "10.99.0.8"])
        created = services.dns.create_record(name=name, rtype="A", data=data)
        assert set_addresses(services.dns.get_record(created.id).data) == [
            "10.99.0.7",
            "10.99.0.8",
            "10.99.0.9",
        ]
        services.dns.update_record(created.id, data=record_set(["10.99.0.7"]))
        assert services.dns.get_record(created.id).data == "10.99.0.7"
        for bad in ("", "10.99.0.7 nope"):
            with pytest.raises(InvalidRequest):
                services.dns.update_record(created.id, data=bad)

    def test_the_same_name_with_another_type(self, services: Services) -> None:
        name = hostname()
        a = services.dns.create_record(name=name, rtype="A", data="10.99.0.7")
        txt = services.dns.create_record(name=name, rtype="TXT", data="cellar")
        assert a.id != txt.id
        found = services.dns.find_record(name, "TXT")
        assert found is not None and found.id == txt.id
