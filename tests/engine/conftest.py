"""Fixtures for engine tests."""

from __future__ import annotations

import pytest

from engine import load_workflow

from .builders import write_case


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """Read-only: tests (hypothesis ones included) share it, which also proves apply never mutates it."""
    return load_workflow(write_case(tmp_path_factory.mktemp("case")))
