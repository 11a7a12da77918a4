"""The SQL of a PostgreSQL prepare: the root password, databases, users and their grants.

Names are quoted as identifiers and passwords as literals (psycopg's `sql`), and the
session keeps its statements out of the server log even when one fails: a statement that
sets a password would otherwise be written there in full.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from cellar.domain.specs import DatabaseSpec
from cellar.guest.manager import PrepareRequest
from cellar.guest.pgfiles import REPLICATION_USER, SUPERUSER

Connect = Callable[[str], psycopg.Connection[tuple[object, ...]]]


def set_superuser_password(connect: Connect, password: str) -> None:
    """Through the superuser's own (peer-authenticated) connection; never logged."""
    with connect("postgres") as conn:
        conn.execute("SET log_min_error_statement = panic")
        conn.execute("SET log_statement = 'none'")
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(password)
            )
        )


def create_objects(connect: Connect, request: PrepareRequest, password: str) -> None:
    """Through `connect(dbname)` (the superuser's connection): set the superuser's
    password, make the databases and users, and grant each user its databases."""
    ident, literal = sql.Identifier, sql.Literal
    with connect("postgres") as conn:
        conn.execute("SET log_min_error_statement = panic")
        conn.execute("SET log_statement = 'none'")
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(SUPERUSER), literal(password))
        )
        for db in request.databases:
            create_database(conn, db)
        for user in request.users:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    ident(user.name), literal(user.password)
                )
            )
            for name in user.databases:
                conn.execute(
                    sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(ident(name), ident(user.name))
                )
    # Since PostgreSQL 15 only a database's owner may create in its public schema.
    for user in request.users:
        for name in user.databases:
            with connect(name) as conn:
                conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(ident(user.name)))


def create_database(conn: psycopg.Connection[tuple[object, ...]], db: DatabaseSpec) -> None:
    """One database, closed to PUBLIC (no CONNECT, no TEMPORARY): only the users granted
    it connect (`cellar.guest.pgusers`)."""
    query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(db.name))
    if db.character_set:
        query += sql.SQL(" ENCODING {}").format(sql.Literal(db.character_set))
    if db.collate:
        query += sql.SQL(" LC_COLLATE {c} LC_CTYPE {c}").format(c=sql.Literal(db.collate))
    conn.execute(query)
    conn.execute(
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(db.name)
        )
    )


# What pg_rewind runs on its source as a non-superuser (PostgreSQL's pg_rewind page).
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def create_replication_role(connect: Connect, password: str) -> None:
    """On a group's first primary: the replication role, REPLICATION LOGIN but not a
    superuser, with the grants pg_rewind needs; a repeat sets its password again. The
    standbys get it (and its grants) with the rest of the catalog."""
    name = sql.Identifier(REPLICATION_USER)
    with connect("postgres") as conn:
        conn.execute("SET log_min_error_statement = panic")
        conn.execute("SET log_statement = 'none'")
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATION_USER,)
        ).fetchone()
        verb = sql.SQL("ALTER" if exists else "CREATE")
        conn.execute(
            sql.SQL("{} ROLE {} NOSUPERUSER REPLICATION LOGIN PASSWORD {}").format(
                verb, name, sql.Literal(password)
            )
        )
        for function in REWIND_FUNCTIONS:
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), name)
            )
