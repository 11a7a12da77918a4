"""What a client sends to `/instances/{id}/users`, `/databases` and `/root` (Trove's
`apischema.user` and `apischema.dbschema`), with the names and passwords of an instance
create's `users` and `databases` (`cellar.api.schemas`) validated the same way."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cellar.api.schemas import (
    DatabaseCreate,
    DatabaseRef,
    Password,
    StrictModel,
    UserCreate,
    UserName,
    _no_duplicates,
)
from cellar.domain.accounts import ANY_HOST


def _any_host(value: str) -> str:
    if value != ANY_HOST:
        raise PydanticCustomError(
            "host",
            f"must be {ANY_HOST!r}: a PostgreSQL user connects from wherever the instance's "
            "access rules let it",
        )
    return value


Host = Annotated[str, AfterValidator(_any_host)]


class DatabasesCreateRequest(StrictModel):
    databases: list[DatabaseCreate]

    @field_validator("databases")
    @classmethod
    def _distinct(cls, value: list[DatabaseCreate]) -> list[DatabaseCreate]:
        _no_duplicates([d.name for d in value], "database")
        return value


class UserCreateWithHost(UserCreate):
    host: Host | None = None


class UsersCreateRequest(StrictModel):
    users: list[UserCreateWithHost]

    @field_validator("users")
    @classmethod
    def _distinct(cls, value: list[UserCreateWithHost]) -> list[UserCreateWithHost]:
        _no_duplicates([u.name for u in value], "user")
        return value


class UserUpdate(StrictModel):
    name: UserName | None = None
    password: Password | None = None
    host: Host | None = None

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if self.name is None and self.password is None and self.host is None:
            raise PydanticCustomError("empty", "must set name or password")
        return self


class UserUpdateRequest(StrictModel):
    user: UserUpdate


class PasswordChange(StrictModel):
    name: str = Field(min_length=1, max_length=255)
    password: Password
    host: Host | None = None


class PasswordsChangeRequest(StrictModel):
    users: list[PasswordChange]

    @field_validator("users")
    @classmethod
    def _distinct(cls, value: list[PasswordChange]) -> list[PasswordChange]:
        _no_duplicates([u.name for u in value], "user")
        return value


class GrantRequest(StrictModel):
    databases: list[DatabaseRef]

    @field_validator("databases")
    @classmethod
    def _distinct(cls, value: list[DatabaseRef]) -> list[DatabaseRef]:
        _no_duplicates([d.name for d in value], "database")
        return value


class RootEnableRequest(StrictModel):
    password: Password | None = None
