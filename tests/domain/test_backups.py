"""The backup vocabulary: stanza names, the window, restore targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cellar.domain.backups import (
    RepositoryAccess,
    RestorableWindow,
    RestoreTarget,
    stanza_name,
    valid_stanza,
)


def test_a_stanza_is_named_after_its_instance_for_ever() -> None:
    name = stanza_name("8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015")
    assert name == "cellar-8f7c3b1e-0c5e-4c55-9d8e-5f0a3a3d1015" and valid_stanza(name)
    assert valid_stanza(stanza_name("a b/c")) and not valid_stanza("a b")


def test_the_window_holds_its_ends() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = RestorableWindow(start, start + timedelta(minutes=5))
    assert start in window and start + timedelta(minutes=5) in window
    assert start - timedelta(microseconds=1) not in window


def test_targets_and_access_refuse_what_pgbackrest_would() -> None:
    with pytest.raises(ValueError, match="time zone"):
        RestoreTarget("cellar-x", target_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="stanza"):
        RestoreTarget("../x")
    with pytest.raises(ValueError, match="stanza"):
        RepositoryAccess("a b")
    assert RestoreTarget("cellar-x", label="20261202-121704F").target_time is None
