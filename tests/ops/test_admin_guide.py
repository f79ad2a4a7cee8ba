"""docs/ADMIN.md stays true to the project: its links lead somewhere, the settings in its examples
exist, and the commands it tells administrators to run are ones the project has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings
from tests.support.prereq import repo_root

ROOT = repo_root()
GUIDE = ROOT / "docs" / "ADMIN.md"
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")
SETTING_LINE = re.compile(r"^([A-Z][A-Z0-9_]+)=", re.MULTILINE)


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    for line in markdown.read_text("utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().replace("`", "").lower()
            slug = re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-")
            found.add(slug)
    return found


def local_links(markdown: Path) -> list[tuple[Path, str]]:
    links = []
    for target in LINK.findall(markdown.read_text("utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        links.append(((markdown.parent / path).resolve() if path else markdown, anchor))
    return links


@pytest.mark.parametrize("document", [GUIDE, ROOT / "README.md"], ids=lambda p: p.name)
def test_links_between_the_guides_lead_to_files_and_headings_that_exist(document: Path) -> None:
    broken = []
    for path, anchor in local_links(document):
        if not path.exists():
            broken.append(f"{path}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{path.name}#{anchor}: no such heading")
    assert broken == []


def test_the_guide_is_linked_from_the_readme() -> None:
    readme_links = {path for path, _ in local_links(ROOT / "README.md")}
    assert GUIDE.resolve() in readme_links


def test_every_setting_in_the_guide_examples_is_a_real_setting() -> None:
    text = GUIDE.read_text("utf-8")
    blocks = re.findall(r"```(?:ini|bash)\n(.*?)```", text, re.DOTALL)
    names = {name for block in blocks for name in SETTING_LINE.findall(block)}
    known = {str(field.validation_alias) for field in Settings.model_fields.values()}

    assert names, "the guide shows example settings"
    assert names <= known, f"not settings of Frontdesk: {sorted(names - known)}"


def test_the_guide_covers_each_topic_of_the_setup() -> None:
    headings = anchors(GUIDE)
    for topic in (
        "entra-app",
        "azure-bot",
        "teams-channel",
        "https",
        "permissions-admin-consent-and-the-oauth-connection",
        "teams-client",
        "teams-admin-center",
        "rooms",
        "catalogue-and-approval-policies",
        "upgrading",
        "backing-up",
        "agents-toolkit",
    ):
        assert any(topic in heading for heading in headings), f"no section on {topic}"
    text = GUIDE.read_text("utf-8")
    needed = ("make package", "python app.py doctor", "pg_dump", ".backup", "Token Exchange URL")
    for command in needed:
        assert command in text, command
