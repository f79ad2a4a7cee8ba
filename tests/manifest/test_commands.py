"""The manifest's command menu agrees with the commands the bot really answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.commands import COMMANDS, match_command
from manifest.build import Sources, build_package, command_lists
from manifest.validate import COMMAND_DESCRIPTION_MAX, COMMAND_TITLE_MAX, PackageError
from tests.manifest.conftest import EditTemplate, make_details


def _titles(lists: list[dict[str, Any]]) -> list[str]:
    return [str(c["title"]) for c in lists[0]["commands"]]


def test_every_command_is_in_the_menu_for_every_scope() -> None:
    lists = command_lists(online_meetings=True)

    assert len(lists) == 1
    assert sorted(lists[0]["scopes"]) == ["groupChat", "personal", "team"]
    assert len(_titles(lists)) == len(COMMANDS)


@pytest.mark.parametrize("online_meetings", [True, False])
def test_each_menu_entry_runs_its_command_with_its_help_text(online_meetings: bool) -> None:
    entries = command_lists(online_meetings=online_meetings)[0]["commands"]
    offered = [c for c in COMMANDS if online_meetings or not c.needs_online_meetings]

    assert len(entries) == len(offered)
    for entry, command in zip(entries, offered, strict=True):
        assert match_command(entry["title"]) is command
        assert entry["title"] in command.phrases
        assert entry["description"] == command.description


def test_meet_now_is_offered_only_where_meetings_can_be_made() -> None:
    with_meetings = _titles(command_lists(online_meetings=True))
    without = _titles(command_lists(online_meetings=False))

    needing = [c.phrases[0] for c in COMMANDS if c.needs_online_meetings]
    assert needing, "the table has a command that needs online meetings"
    assert all(title in with_meetings for title in needing)
    assert not any(title in without for title in needing)


def test_menu_entries_fit_what_teams_shows() -> None:
    for entry in command_lists(online_meetings=True)[0]["commands"]:
        assert 0 < len(entry["title"]) <= COMMAND_TITLE_MAX, entry
        assert 0 < len(entry["description"]) <= COMMAND_DESCRIPTION_MAX, entry


def test_the_package_s_menu_is_the_table_s(tmp_path: Path, sources: Sources) -> None:
    manifest = build_package(make_details(online_meetings=False), tmp_path / "app.zip", sources)

    assert manifest.manifest["bots"][0]["commandLists"] == command_lists(online_meetings=False)


def test_a_command_the_bot_does_not_answer_is_refused(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    made_up = [
        {
            "scopes": ["personal"],
            "commands": [{"title": "order pizza", "description": "Not something Frontdesk does."}],
        }
    ]
    edit_template(lambda m: m["bots"][0].update(commandLists=made_up))

    with pytest.raises(PackageError) as raised:
        build_package(make_details(), tmp_path / "app.zip", sources)

    assert (
        "bots[0].commandLists[0].commands[0].title: 'order pizza' is not a command the bot answers"
        in str(raised.value)
    )
