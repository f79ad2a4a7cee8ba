"""Shared fixtures for service requests and approvals: the shipped demo files, loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.approvals.catalogue import Catalogue, load_catalogue
from bot.approvals.policy import PolicyBook, load_policies
from bot.config import PROJECT_ROOT

DEMO_CATALOGUE = PROJECT_ROOT / "catalogue" / "services.yaml"
DEMO_POLICIES = PROJECT_ROOT / "catalogue" / "policies.yaml"


@pytest.fixture
def demo_book() -> PolicyBook:
    return load_policies(DEMO_POLICIES)


@pytest.fixture
def demo_catalogue(demo_book: PolicyBook) -> Catalogue:
    return load_catalogue(DEMO_CATALOGUE, demo_book)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
