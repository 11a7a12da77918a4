"""The fake DNS service: records of one zone, one per name and type, data checked by type."""

from __future__ import annotations

import ipaddress
import uuid
from contextlib import AbstractContextManager

from cellar.drivers.base import InvalidRequest
from cellar.drivers.dns.base import DNSDriver, Record, RecordExists, RecordNotFound
from cellar.drivers.fake.cloud import FakeCloud
from cellar.drivers.fake.store import RECORD, Row, Tx

_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT"})
_ADDRESS_TYPES: dict[str, type[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {
    "A": ipaddress.IPv4Address,
    "AAAA": ipaddress.IPv6Address,
}


def _check(rtype: str, data: str) -> None:
    if rtype not in _TYPES:
        raise InvalidRequest(f"Record type {rtype!r} is not one of {', '.join(sorted(_TYPES))}.")
    address_type = _ADDRESS_TYPES.get(rtype)
    if address_type is not None:
        try:
            if not data.split():
                raise ValueError(data)
            for address in data.split():
                address_type(address)
        except ValueError:
            raise InvalidRequest(f"{data!r} is not the address of a {rtype} record.") from None


def _require(tx: Tx, record_id: str) -> Row:
    row = tx.get(RECORD, record_id)
    if row is None:
        raise RecordNotFound(record_id)
    return row


def _to_record(row: Row) -> Record:
    data = row.data
    return Record(id=row.id, name=row.name, type=data["type"], data=data["data"], ttl=data["ttl"])


class FakeDNS(DNSDriver):
    def __init__(self, cloud: FakeCloud) -> None:
        self._cloud = cloud

    def _call(self, method: str) -> AbstractContextManager[Tx]:
        return self._cloud.call(f"dns.{method}")

    def list_records(self) -> list[Record]:
        with self._call("list_records") as tx:
            return [_to_record(row) for row in tx.all(RECORD)]

    def get_record(self, record_id: str) -> Record:
        with self._call("get_record") as tx:
            return _to_record(_require(tx, record_id))

    def find_record(self, name: str, rtype: str = "A") -> Record | None:
        with self._call("find_record") as tx:
            return self._find(tx, name, rtype)

    def create_record(self, *, name: str, rtype: str, data: str, ttl: int = 300) -> Record:
        with self._call("create_record") as tx:
            _check(rtype, data)
            if ttl < 1:
                raise InvalidRequest(f"A record's TTL must be at least 1 second, not {ttl}.")
            if self._find(tx, name, rtype) is not None:
                raise RecordExists(name, rtype)
            values = {"type": rtype, "data": data, "ttl": ttl}
            return _to_record(tx.insert(Row(str(uuid.uuid4()), RECORD, name, None, values)))

    def update_record(self, record_id: str, *, data: str) -> Record:
        with self._call("update_record") as tx:
            row = _require(tx, record_id)
            _check(row.data["type"], data)
            return _to_record(tx.update(row.changed(data=data)))

    def delete_record(self, record_id: str) -> None:
        with self._call("delete_record") as tx:
            _require(tx, record_id)
            tx.delete(record_id)

    def _find(self, tx: Tx, name: str, rtype: str) -> Record | None:
        matches = [row for row in tx.by_name(RECORD, name) if row.data["type"] == rtype]
        return _to_record(matches[0]) if matches else None
