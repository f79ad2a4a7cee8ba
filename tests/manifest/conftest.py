"""Factories for the app package tests: deployment details, a private copy of the package's
sources (so no test touches the committed version.json), and zips made by hand."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from manifest.build import (
    COLOR_ICON_FILE,
    OUTLINE_ICON_FILE,
    TEMPLATE_FILE,
    VERSION_FILE,
    AppDetails,
    Sources,
)
from manifest.validate import SCHEMA_FILE
from tests.support.prereq import require

APP_ID = "6e1b7a52-0d8f-4c7e-9a51-2f3c4d5e6f70"
TEAMS_APP_ID = "0b7d9c1e-3f5a-4b6c-8d7e-9f0a1b2c3d4e"
HOST = "frontdesk.contoso.com"


def make_details(**overrides: Any) -> AppDetails:
    """A deployment in graph mode (every command offered) unless told otherwise."""
    details = AppDetails(
        teams_app_id=TEAMS_APP_ID,
        bot_id=APP_ID,
        public_hostname=HOST,
        developer_name="Contoso Facilities",
        website_url="https://contoso.com/frontdesk",
        privacy_url="https://contoso.com/privacy",
        terms_url="https://contoso.com/terms",
        online_meetings=True,
    )
    return replace(details, **overrides)


@pytest.fixture
def schema_file() -> Path:
    require(
        SCHEMA_FILE.is_file(),
        f"the Teams manifest schema {SCHEMA_FILE} is missing: run `make node`",
    )
    return SCHEMA_FILE


@pytest.fixture
def sources(tmp_path: Path, schema_file: Path) -> Sources:
    """Copies of the committed template, icons and version.json in a scratch folder."""
    folder = tmp_path / "sources"
    folder.mkdir()
    for source in (TEMPLATE_FILE, COLOR_ICON_FILE, OUTLINE_ICON_FILE, VERSION_FILE):
        shutil.copy(source, folder / source.name)
    return Sources(
        template=folder / TEMPLATE_FILE.name,
        color_icon=folder / COLOR_ICON_FILE.name,
        outline_icon=folder / OUTLINE_ICON_FILE.name,
        version_file=folder / VERSION_FILE.name,
        schema=schema_file,
    )


EditTemplate = Callable[[Callable[[dict[str, Any]], None]], None]


@pytest.fixture
def edit_template(sources: Sources) -> EditTemplate:
    """Change the scratch template with a function of its JSON."""

    def edit(change: Callable[[dict[str, Any]], None]) -> None:
        template = json.loads(sources.template.read_text(encoding="utf-8"))
        change(template)
        sources.template.write_text(json.dumps(template, indent=2), encoding="utf-8")

    return edit


def write_zip(path: Path, files: Mapping[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
