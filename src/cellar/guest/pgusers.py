"""Users, databases and grants on a running PostgreSQL, through the superuser's socket.

A database cellar makes is closed to PUBLIC (no CONNECT, no TEMPORARY): only the users
granted it connect. A grant gives the database's privileges and, inside it, USAGE and
CREATE on schema `public`: since PostgreSQL 15 only the schema's owner (the database
owner) may create there. Granting rather than handing over the schema lets several users
share one database, and keeps the PostgreSQL 15 protection for everyone not granted it.
A revoke takes both away and ends the user's sessions on that database. A user dropped
leaves its tables behind: what it owned goes to the superuser first.

Every session keeps its statements out of the server's log (a statement that sets a
password would otherwise be written there in full when it fails), and an error is told
by its primary message only, which never quotes the statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import errors, sql

from cellar.domain.accounts import (
    SUPERUSER,
    DatabaseInfo,
    UserInfo,
    reserved_database,
    reserved_user,
)
from cellar.domain.specs import DatabaseSpec, UserSpec
from cellar.guest.accounts import Accounts
from cellar.guest.manager import GuestCommandError, GuestConflict, GuestExists, GuestNotFound
from cellar.guest.pgsetup import Connect, create_database

ident, literal = sql.Identifier, sql.Literal

_USERS = """
SELECT r.rolname,
       COALESCE(array_agg(d.datname ORDER BY d.datname)
                FILTER (WHERE d.datname IS NOT NULL), '{}')
  FROM pg_roles r
  LEFT JOIN pg_database d
    ON NOT d.datistemplate
   AND EXISTS (SELECT 1 FROM aclexplode(d.datacl) a
                WHERE a.grantee = r.oid AND a.privilege_type = 'CONNECT')
 WHERE r.rolcanlogin
 GROUP BY r.rolname
 ORDER BY r.rolname
"""


class PgAccounts(Accounts):
    def __init__(self, connect: Connect) -> None:
        self._connect = connect

    @contextmanager
    def _session(
        self, dbname: str = "postgres"
    ) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """The superuser's quiet session; PostgreSQL's refusals become the agent's."""
        try:
            with self._connect(dbname) as conn:
                conn.execute("SET log_min_error_statement = panic")
                conn.execute("SET log_statement = 'none'")
                yield conn
        except psycopg.Error as exc:
            raise _refusal(exc) from None

    # Databases.

    def list_databases(self) -> list[DatabaseInfo]:
        with self._session() as conn:
            rows = conn.execute(
                "SELECT datname, pg_encoding_to_char(encoding), datcollate FROM pg_database "
                "WHERE NOT datistemplate ORDER BY datname"
            ).fetchall()
        return [
            DatabaseInfo(str(n), str(e), str(c))
            for n, e, c in rows
            if not reserved_database(str(n))
        ]

    def _database_names(self) -> set[str]:
        return {d.name for d in self.list_databases()}

    def create_databases(self, databases: Sequence[DatabaseSpec]) -> None:
        existing = self._database_names()
        for db in databases:
            if db.name in existing or reserved_database(db.name):
                raise GuestExists(f'A database with the name "{db.name}" already exists.')
        try:
            with self._session() as conn:
                for db in databases:
                    create_database(conn, db)
        except GuestExists:
            raise
        except GuestCommandError as exc:  # an encoding or a locale it does not know
            raise ValueError(f"databases: {exc}") from None

    def delete_database(self, name: str) -> None:
        if name not in self._database_names():
            raise GuestNotFound(f"Database {name} cannot be found on the instance.")
        with self._session() as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident(name)))

    # Users.

    def list_users(self) -> list[UserInfo]:
        with self._session() as conn:
            rows = conn.execute(_USERS).fetchall()
        users = []
        for name, databases in rows:
            if reserved_user(str(name)):
                continue
            visible = tuple(str(d) for d in list(databases) if not reserved_database(str(d)))  # type: ignore[call-overload]
            users.append(UserInfo(str(name), visible))
        return users

    def _user(self, name: str) -> UserInfo:
        for user in self.list_users():
            if user.name == name:
                return user
        raise GuestNotFound(f"User {name} cannot be found on the instance.")

    def _role_exists(self, conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        return row is not None

    def create_users(self, users: Sequence[UserSpec]) -> None:
        databases = self._database_names()
        with self._session() as conn:
            for user in users:
                if self._role_exists(conn, user.name) or reserved_user(user.name):
                    raise GuestExists(f'A user with the name "{user.name}" already exists.')
                for name in user.databases:
                    if name not in databases:
                        raise GuestNotFound(f"Database {name} cannot be found on the instance.")
            for user in users:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        ident(user.name), literal(user.password)
                    )
                )
        for user in users:
            self._grant(user.name, user.databases)

    def delete_user(self, name: str) -> None:
        self._user(name)
        with self._session() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
            ).fetchall()
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
        # What it owns goes to the superuser, database by database (tables are per
        # database); then its remaining privileges go (DROP OWNED), then the role.
        for (dbname,) in rows:
            with self._session(str(dbname)) as conn:
                conn.execute(
                    sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident(name), ident(SUPERUSER))
                )
                conn.execute(sql.SQL("DROP OWNED BY {}").format(ident(name)))
        with self._session() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(ident(name)))

    def update_user(self, name: str, *, new_name: str | None, password: str | None) -> None:
        self._user(name)
        with self._session() as conn:
            if new_name is not None and new_name != name:
                if self._role_exists(conn, new_name) or reserved_user(new_name):
                    raise GuestExists(f'A user with the name "{new_name}" already exists.')
                # A SCRAM password survives the rename (an MD5 one would not: cellar's
                # passwords are SCRAM, PostgreSQL 15's default).
                conn.execute(
                    sql.SQL("ALTER ROLE {} RENAME TO {}").format(ident(name), ident(new_name))
                )
                name = new_name
            if password is not None:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(name), literal(password))
                )

    def change_passwords(self, users: Sequence[tuple[str, str]]) -> None:
        known = {u.name for u in self.list_users()}
        for name, _ in users:
            if name not in known:
                raise GuestNotFound(f"User {name} cannot be found on the instance.")
        with self._session() as conn:
            for name, password in users:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(name), literal(password))
                )

    # Access.

    def grant(self, name: str, databases: Sequence[str]) -> None:
        self._user(name)
        existing = self._database_names()
        for db in databases:
            if db not in existing:
                raise GuestNotFound(f"Database {db} cannot be found on the instance.")
        self._grant(name, databases)

    def _grant(self, name: str, databases: Sequence[str]) -> None:
        for db in databases:
            with self._session() as conn:
                conn.execute(
                    sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(ident(db), ident(name))
                )
            with self._session(db) as conn:
                conn.execute(
                    sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(ident(name))
                )

    def revoke(self, name: str, database: str) -> None:
        if database not in self._user(name).databases:
            raise GuestNotFound(f"Database {database} cannot be found on the instance.")
        with self._session(database) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(ident(name)))
        with self._session() as conn:
            db, user = ident(database), ident(name)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, user))
            # PUBLIC may connect to a database it did not make (one root made): a revoke
            # must leave the user out, as Trove's does.
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s AND datname = %s",
                (name, database),
            )

    def disable_root(self) -> None:
        with self._session() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(ident(SUPERUSER)))


def _refusal(exc: psycopg.Error) -> GuestCommandError | ValueError:
    """PostgreSQL's refusal as the agent tells it (the primary message only)."""
    message = exc.diag.message_primary or type(exc).__name__
    if isinstance(exc, errors.DuplicateObject | errors.DuplicateDatabase):
        return GuestExists(message)
    if isinstance(exc, errors.UndefinedObject | errors.InvalidCatalogName):
        return GuestNotFound(message)
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return GuestConflict(f"The datastore is a read-only replica: {message}")
    if isinstance(exc, errors.DataException | errors.InvalidParameterValue):
        return ValueError(message)
    return GuestCommandError(f"PostgreSQL refused: {message}")
