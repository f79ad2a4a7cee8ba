"""The package passes @microsoft/app-manifest's own validator (AppManifestUtils, offline), and
that validator does reject a broken manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from manifest.build import Sources, build_package
from manifest.validate import NODE_MODULES, PackageError, node_validation
from tests.manifest.conftest import make_details
from tests.support.prereq import require


@pytest.fixture
def built_manifest(tmp_path: Path, sources: Sources) -> dict[str, Any]:
    require(
        shutil.which("node") is not None
        and (NODE_MODULES / "@microsoft" / "app-manifest").is_dir(),
        "node and npm @microsoft/app-manifest are needed: run `make node`",
    )
    return build_package(make_details(), tmp_path / "app.zip", sources).manifest


def _write(tmp_path: Path, manifest: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def test_the_package_s_manifest_passes_the_official_validator(
    tmp_path: Path, built_manifest: dict[str, Any]
) -> None:
    output = node_validation(_write(tmp_path, built_manifest))

    assert output == "valid Teams manifest 1.30 (@microsoft/app-manifest)"


def test_the_official_validator_rejects_a_broken_manifest(
    tmp_path: Path, built_manifest: dict[str, Any]
) -> None:
    built_manifest["bots"][0]["botId"] = "frontdesk-bot"
    built_manifest["accentColor"] = "blue"

    with pytest.raises(PackageError) as raised:
        node_validation(_write(tmp_path, built_manifest))

    message = str(raised.value)
    assert "/bots/0/botId must match pattern" in message
    assert "/accentColor must match pattern" in message


def test_the_official_validator_does_not_go_online(
    tmp_path: Path, built_manifest: dict[str, Any]
) -> None:
    # A schema the package does not ship would have to be downloaded: refused, not fetched.
    built_manifest["$schema"] = "https://schemas.example.com/teams/MicrosoftTeams.schema.json"

    with pytest.raises(PackageError, match="network access refused"):
        node_validation(_write(tmp_path, built_manifest))
