"""The template tests' shared checks live in `helpers`: let pytest explain their asserts."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("orchestration.templates.helpers")
