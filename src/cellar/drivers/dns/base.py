"""The DNS service: records in a zone (Designate's role)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cellar.drivers.base import InvalidRequest, ResourceNotFound


class RecordNotFound(ResourceNotFound):
    def __init__(self, record_id: str) -> None:
        super().__init__("DNS record", record_id)
        self.record_id = record_id


class RecordExists(InvalidRequest):
    def __init__(self, name: str, rtype: str) -> None:
        super().__init__(f"A {rtype} record named {name} already exists.")
        self.record_name = name


@dataclass(frozen=True)
class Record:
    id: str
    name: str
    type: str
    data: str
    ttl: int = 300
    extra: Mapping[str, Any] = field(default_factory=dict)


class DNSDriver(abc.ABC):
    name: str = "dns"

    @abc.abstractmethod
    def list_records(self) -> list[Record]: ...

    @abc.abstractmethod
    def get_record(self, record_id: str) -> Record: ...

    def find_record(self, name: str, rtype: str = "A") -> Record | None:
        matches = [r for r in self.list_records() if r.name == name and r.type == rtype]
        return matches[0] if matches else None

    @abc.abstractmethod
    def create_record(self, *, name: str, rtype: str, data: str, ttl: int = 300) -> Record:
        """Create a record; one with the same name and type raises `RecordExists`.

        An A or AAAA record may hold several addresses, separated by spaces (a record set,
        Designate's `records`): the name answers with each (`record_set`)."""

    @abc.abstractmethod
    def update_record(self, record_id: str, *, data: str) -> Record: ...

    @abc.abstractmethod
    def delete_record(self, record_id: str) -> None: ...


def record_set(addresses: Iterable[str]) -> str:
    """The data of an A (or AAAA) record answering with each of `addresses`, sorted."""
    return " ".join(sorted(set(addresses)))


def set_addresses(data: str) -> list[str]:
    """The addresses of an A or AAAA record's data (`record_set`)."""
    return data.split()
