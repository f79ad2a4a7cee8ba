"""Test prerequisites: skip when a tool is missing, fail instead in CI.

CI sets FRONTDESK_REQUIRE_ALL=1 so that a missing prerequisite cannot hide as a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("FRONTDESK_REQUIRE_ALL") == "1"


def require(ok: bool, reason: str) -> None:
    """Skip the test if not ok, or fail it when FRONTDESK_REQUIRE_ALL=1."""
    if ok:
        return
    if REQUIRE_ALL:
        pytest.fail(reason)
    pytest.skip(reason)


def repo_root() -> Path:
    """The repository's root directory (the parent of `tests/`)."""
    return Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """FRONTDESK_SHARED_DIR, else `../shared` beside the repo; None if it is missing."""
    configured = os.environ.get("FRONTDESK_SHARED_DIR")
    candidate = Path(configured) if configured else repo_root().parent / "shared"
    return candidate if candidate.is_dir() else None


def node_tools() -> Path:
    """The directory of the Node tools the tests run (`tests/js`)."""
    return repo_root() / "tests" / "js"


def node_available() -> bool:
    """Whether `node` is on PATH and npm `adaptivecards` is installed in tests/js."""
    has_node = shutil.which("node") is not None
    has_renderer = (node_tools() / "node_modules" / "adaptivecards").is_dir()
    return has_node and has_renderer
