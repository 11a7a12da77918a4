"""The local cloud's DNS service: records of one zone in the local cloud's state file.

The records are what `cellar.localcloud.dns` serves, at once, from any process. The
refusals are the fake's, plus those of a real zone:

- one record per name and type (`RecordExists`); names compare as DNS does (case and a
  final dot ignored); a CNAME shares its name with no other record (`InvalidRequest`);
- the types are those the server answers: A, AAAA, CNAME, TXT (others: `InvalidRequest`);
- A data is an IPv4 address, AAAA an IPv6 one, CNAME a host name, TXT at most 255 bytes;
- a name must be a host name in the zone (`settings.dns_zone`) or its apex: a name
  outside it is `InvalidRequest`, since the server would refuse to answer for it
  (`find_record` of such a name is simply None);
- the TTL is 1 second to 2**31 - 1.

A record keeps the name as given (`Record.name`); the state row is keyed by the
canonical name the server looks up. A state file locked past SQLite's timeout is
`ServiceUnavailable`.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from cellar.config import Settings
from cellar.drivers.base import InvalidRequest, ServiceUnavailable
from cellar.drivers.dns.base import DNSDriver, Record, RecordExists, RecordNotFound
from cellar.localcloud.dns import (
    RECORD,
    SERVED_TYPES,
    canonical_name,
    in_zone,
    state_path,
    valid_hostname,
)
from cellar.localcloud.state import CloudState, Resource

_MAX_TTL = 2**31 - 1


class LocalDNSDriver(DNSDriver):
    def __init__(self, settings: Settings, state: CloudState | None = None) -> None:
        self.zone = canonical_name(settings.dns_zone)
        self._state = state if state is not None else CloudState(state_path(settings))

    def list_records(self) -> list[Record]:
        with _available():
            return [_to_record(row) for row in self._state.list(RECORD)]

    def get_record(self, record_id: str) -> Record:
        with _available():
            return _to_record(self._require(record_id))

    def find_record(self, name: str, rtype: str = "A") -> Record | None:
        with _available():
            rows = self._state.find(RECORD, canonical_name(name))
        matches = [row for row in rows if row.data["type"] == rtype]
        return _to_record(matches[0]) if matches else None

    def create_record(self, *, name: str, rtype: str, data: str, ttl: int = 300) -> Record:
        self._check_name(name)
        _check_data(rtype, data)
        if not 1 <= ttl <= _MAX_TTL:
            raise InvalidRequest(f"A record's TTL must be 1 to {_MAX_TTL} seconds, not {ttl}.")
        key = canonical_name(name)
        with _available(), self._state.tx():
            others = self._state.find(RECORD, key)
            if any(row.data["type"] == rtype for row in others):
                raise RecordExists(name, rtype)
            if others and "CNAME" in {rtype, *(row.data["type"] for row in others)}:
                raise InvalidRequest(
                    f"{name} has other records: a CNAME shares its name with none."
                )
            values = {"name": name, "type": rtype, "data": data, "ttl": ttl}
            return _to_record(
                self._state.put(Resource(str(uuid.uuid4()), RECORD, key, None, values))
            )

    def update_record(self, record_id: str, *, data: str) -> Record:
        with _available(), self._state.tx():
            row = self._require(record_id)
            _check_data(row.data["type"], data)
            updated = Resource(row.id, RECORD, row.name, row.parent, {**row.data, "data": data})
            return _to_record(self._state.put(updated))

    def delete_record(self, record_id: str) -> None:
        with _available(), self._state.tx():
            self._require(record_id)
            self._state.delete(RECORD, record_id)

    def _require(self, record_id: str) -> Resource:
        row = self._state.get(RECORD, record_id)
        if row is None:
            raise RecordNotFound(record_id)
        return row

    def _check_name(self, name: str) -> None:
        if not valid_hostname(name):
            raise InvalidRequest(f"{name!r} is not a valid DNS name.")
        if not in_zone(name, self.zone):
            raise InvalidRequest(f"{name} is not in the zone {self.zone} of the local DNS.")


def _check_data(rtype: str, data: str) -> None:
    if rtype not in SERVED_TYPES:
        raise InvalidRequest(
            f"Record type {rtype!r} is not served by the local DNS: one of "
            f"{', '.join(SERVED_TYPES)}."
        )
    if rtype in ("A", "AAAA"):
        address_type = ipaddress.IPv4Address if rtype == "A" else ipaddress.IPv6Address
        try:
            if not data.split():
                raise ValueError(data)
            for address in data.split():
                address_type(address)
        except ValueError:
            raise InvalidRequest(f"{data!r} is not the address of a {rtype} record.") from None
    elif rtype == "CNAME" and not valid_hostname(data):
        raise InvalidRequest(f"{data!r} is not a host name a CNAME record can point to.")
    elif rtype == "TXT" and len(data.encode()) > 255:
        raise InvalidRequest("A TXT record holds at most 255 bytes.")


def _to_record(row: Resource) -> Record:
    values = row.data
    return Record(
        id=row.id,
        name=values["name"],
        type=values["type"],
        data=values["data"],
        ttl=values["ttl"],
    )


@contextmanager
def _available() -> Iterator[None]:
    """A state file locked for longer than SQLite waits is a transient failure."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise ServiceUnavailable(f"The local DNS state is unavailable: {exc}") from exc
