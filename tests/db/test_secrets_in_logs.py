"""What the database layer prints and logs carries no secret: a failing statement's error
and log hold no bound parameter, and `cellar db upgrade` masks the URL's password."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from cellar.cli import main
from cellar.db.migrate import upgrade
from cellar.db.models import Token

SECRET = "s3cret-bound-value-71"


def test_a_failing_statement_logs_no_parameter(
    empty_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(empty_engine)
    # The secret is a bound value of a failing statement, not the key the server's own
    # message (PostgreSQL's DETAIL) names.
    row = {
        "token_hash": "k1",
        "project_id": SECRET,
        "is_admin": False,
        "created": datetime.now(UTC),
        "expires": datetime.now(UTC),
    }
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    empty_engine.echo = True  # every statement logged, with its parameters if shown
    with empty_engine.begin() as conn:
        conn.execute(insert(Token), row)
    with pytest.raises(IntegrityError) as failed:
        try:
            with empty_engine.begin() as conn:
                conn.execute(insert(Token), row)  # the same primary key again
        except IntegrityError:
            logging.getLogger("cellar").exception("the statement failed")
            raise
    assert "INSERT INTO tokens" in str(failed.value)
    assert "hidden due to hide_parameters" in str(failed.value)
    assert "INSERT INTO tokens" in caplog.text and "the statement failed" in caplog.text
    assert SECRET not in str(failed.value)
    assert SECRET not in caplog.text


@pytest.mark.postgres
def test_db_upgrade_masks_the_urls_password(fresh_postgres_url: str) -> None:
    # The test server trusts local connections: the password is carried, not checked.
    url = fresh_postgres_url.replace("postgres@", "postgres:hunter2-pw@", 1)
    assert "hunter2-pw" in url
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output
    assert "postgres:***@" in result.output
    assert "hunter2-pw" not in result.output
