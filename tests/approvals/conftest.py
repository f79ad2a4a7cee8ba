"""Shared fixtures for service requests and approvals: the shipped demo files, loaded, and an
engine for racing clicks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.approvals.catalogue import Catalogue, load_catalogue
from bot.approvals.policy import PolicyBook, load_policies
from bot.config import PROJECT_ROOT
from tests.conftest import migrated_engine

DEMO_CATALOGUE = PROJECT_ROOT / "catalogue" / "services.yaml"
DEMO_POLICIES = PROJECT_ROOT / "catalogue" / "policies.yaml"
# Approvers clicking on one request at once in the races.
RACERS = 50


@pytest.fixture
def demo_book() -> PolicyBook:
    return load_policies(DEMO_POLICIES)


@pytest.fixture
def demo_catalogue(demo_book: PolicyBook) -> Catalogue:
    return load_catalogue(DEMO_CATALOGUE, demo_book)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def race_engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine with a connection for every racer and some to spare."""
    with migrated_engine(database_url, pool_size=RACERS + 4) as engine:
        yield engine
