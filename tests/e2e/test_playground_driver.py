"""Self-tests of the Agents Playground driver: tests/support/playground.py and playground-ui.mjs.

They run the scratch bot (tests/support/scratch_bot.py) behind a real Playground. Verbs, data, input
ids and labels come from the card the Playground pushed, never from constants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.playground import (
    ADAPTIVE_CARD,
    Message,
    Playground,
    PlaygroundError,
    action_data,
    card_text,
    find_action,
    find_actions,
    free_port,
    input_ids,
    require_browser,
    require_playground,
    run_ui_steps,
)
from tests.support.scratch_bot import ScratchBot, demo_card


def _echoed(card: dict[str, Any]) -> dict[str, Any]:
    """The ``data.<key>=<json>`` lines of the scratch bot's echo card, decoded."""
    echoed: dict[str, Any] = {}
    for line in card_text(card).splitlines():
        if line.startswith("data."):
            key, _, value = line[len("data.") :].partition("=")
            echoed[key] = json.loads(value)
    return echoed


def _inputs_of_type(card: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        node
        for node in card.get("body", [])
        if isinstance(node, dict) and node.get("type") == kind and "id" in node
    ]


# ---------------------------------------------------------------------------------------------
# Card helpers (no Playground needed)


def test_card_helpers_read_actions_inputs_and_text() -> None:
    card = demo_card()
    card["body"].append(
        {
            "type": "Container",
            "selectAction": {"type": "Action.OpenUrl", "title": "Open", "url": "https://x"},
            "items": [{"type": "FactSet", "facts": [{"title": "Room", "value": "Atlas"}]}],
        }
    )
    card["actions"].append(
        {
            "type": "Action.ShowCard",
            "title": "More",
            "card": {
                "type": "AdaptiveCard",
                "body": [{"type": "Input.Text", "id": "note", "label": "Note"}],
                "actions": [{"type": "Action.Execute", "title": "Save", "verb": "demo.save"}],
            },
        }
    )

    titles = [action["title"] for action in find_actions(card)]
    assert titles == ["Go", "Open", "Cancel", "More", "Save"]
    assert find_action(card, "Go")["verb"] == "demo.go"
    assert find_action(card, verb="demo.save")["title"] == "Save"
    with pytest.raises(LookupError, match="Cancel"):
        find_action(card, "Nope")
    ids = input_ids(card)
    assert ids[:3] == ["date", "start", "subject"]
    assert ids[-1] == "note"
    assert card_text(card).splitlines() == ["Book a room", "Room: Atlas"]
    assert action_data(find_action(card, "Go"), {"date": "2026-11-23"}) == {
        "x": 1,
        "date": "2026-11-23",
    }


# ---------------------------------------------------------------------------------------------
# HTTP / WebSocket API


@pytest.mark.e2e
async def test_card_invoke_round_trip(tmp_path: Path) -> None:
    require_playground()
    async with (
        ScratchBot(free_port()) as bot,
        Playground(bot.endpoint, log_dir=tmp_path / "playground") as pg,
    ):
        assert pg.config.current_user_id == pg.config.current_user["id"]
        await pg.send_message("card")
        message = await pg.wait_for_card()
        assert message.kind == "create"
        assert message.conversation_id == pg.config.personal_chat_id
        assert message.sender_id == pg.config.bot_id

        card = message.card
        go = next(a for a in find_actions(card) if a["type"] == "Action.Execute")
        ids = input_ids(card)
        assert ids, "the card has inputs"
        inputs = {input_id: f"value of {input_id}" for input_id in ids}

        answer = await pg.invoke_action(message, go, inputs)

        # The Playground answers {type, value}; the bot's statusCode is only in the log stream.
        assert answer["type"] == ADAPTIVE_CARD
        echo = answer["value"]
        assert f"verb={go['verb']}" in card_text(echo)
        assert f"user={pg.config.current_user_id}" in card_text(echo)
        assert _echoed(echo) == action_data(go, inputs)
        full = await pg.bot_invoke_response(message.id)
        assert full["statusCode"] == 200
        assert full["body"]["statusCode"] == 200

        # What the bot received.
        invoke = bot.activities[-1]
        assert invoke["type"] == "invoke"
        assert invoke["name"] == "adaptiveCard/action"
        assert invoke["replyToId"] == message.id
        assert invoke["from"]["id"] == pg.config.current_user_id
        assert invoke["value"]["action"]["verb"] == go["verb"]
        assert invoke["value"]["trigger"] == "manual"

        # No frame follows an invoke: the driver records the card the answer put in place.
        latest = pg.latest_card()
        assert (latest.kind, latest.id, latest.card) == ("invoke", message.id, echo)
        assert not [frame for frame in pg.frames if frame.get("action") == "updateMessage"]

        # Invoking again from the card the answer showed.
        again = find_action(latest.card, verb=go["verb"])
        second = await pg.invoke_action(latest, again)
        assert _echoed(second["value"]) == action_data(again)

        # Errors come back as PlaygroundError with the Playground's status and body.
        with pytest.raises(PlaygroundError) as error:
            await pg.invoke("no-such-message", go["verb"], {})
        assert error.value.status == 400
        assert "playground.out" in pg.log_text()


@pytest.mark.e2e
async def test_update_install_and_other_users(tmp_path: Path) -> None:
    require_playground()
    async with (
        ScratchBot(free_port()) as bot,
        Playground(bot.endpoint, log_dir=tmp_path / "playground") as pg,
    ):
        # update_activity on the connector: an updateMessage frame with the created message's id.
        await pg.send_message("update")
        created = await pg.wait_for(lambda m: m.kind == "create")
        updated = await pg.wait_for(lambda m: m.kind == "update")
        assert updated.id == created.id
        assert card_text(updated.card) == "after update"

        # Install and member events through customActivities.
        sent = await pg.send_install()
        assert sent["type"] == "installationUpdate"
        await pg.wait_for(lambda m: m.text == "event: installationUpdate add")
        await pg.send_members_added("bot")
        await pg.wait_for(lambda m: f"added={pg.config.bot_id}" in (m.text or ""))
        await pg.send_open_events()
        await pg.wait_for(lambda m: (m.text or "").startswith("event: conversationUpdate"))
        kinds = [a["type"] for a in bot.activities]
        assert kinds.count("installationUpdate") == 2
        assert kinds.count("conversationUpdate") == 2

        # Group chat: the bot needs a mention; invokes can come from any member.
        other = pg.config.user(pg.config.users[1]["name"])
        await pg.send_message("card", conversation_id=pg.config.group_chat_id)
        group_card = await pg.wait_for_card()
        assert group_card.conversation_id == pg.config.group_chat_id
        assert bot.activities[-1]["text"].startswith(f"<at>{pg.config.bot_name}</at>")
        # ... but a message always reaches the bot from the current user.
        assert bot.activities[-1]["from"]["id"] == pg.config.current_user_id
        go = next(a for a in find_actions(group_card.card) if a["type"] == "Action.Execute")
        answer = await pg.invoke_action(group_card, go, user_id=other["id"])
        assert f"user={other['id']}" in card_text(answer["value"])
        assert bot.activities[-1]["from"]["aadObjectId"] == other["aadObjectId"]
        with pytest.raises(PlaygroundError) as error:
            await pg.invoke(group_card.id, go["verb"], {}, user_id="nobody")
        assert error.value.status == 400

        # A chat the bot opens with another user: no frames, seen on the log stream.
        target = pg.config.users[2]["id"]
        await pg.send_message(f"dm {target}")
        dm = await pg.wait_for_sent(lambda m: bool(m.cards))
        assert dm.conversation_id.endswith("@test.user")
        assert not [m for m in pg.messages if m.conversation_id == dm.conversation_id]
        go = next(a for a in find_actions(dm.card) if a["type"] == "Action.Execute")
        answer = await pg.invoke_action(dm, go, user_id=target)
        assert f"user={target}" in card_text(answer["value"])
        with pytest.raises(PlaygroundError):
            await pg.invoke_action(dm, go)  # the current user is not in that chat


@pytest.mark.e2e
async def test_wait_for_times_out_with_what_it_saw(tmp_path: Path) -> None:
    require_playground()
    async with (
        ScratchBot(free_port()) as bot,
        Playground(bot.endpoint, log_dir=tmp_path / "playground") as pg,
    ):
        await pg.send_message("hello")
        with pytest.raises(TimeoutError, match="echo: hello"):
            await pg.wait_for(lambda m: bool(m.cards), timeout=1.0)
        message: Message = await pg.wait_for(lambda m: m.text == "echo: hello", after=0)
        assert message.cards == []


# ---------------------------------------------------------------------------------------------
# Web UI in headless Chromium


@pytest.mark.e2e
@pytest.mark.browser
async def test_ui_fills_the_card_and_shows_the_echo(tmp_path: Path) -> None:
    require_browser()
    async with (
        ScratchBot(free_port()) as bot,
        Playground(bot.endpoint, log_dir=tmp_path / "playground") as pg,
    ):
        # Learn the card (labels, action title) from the Playground before driving the UI.
        await pg.send_message("card")
        card = (await pg.wait_for_card()).card
        label = {kind: _inputs_of_type(card, kind)[0]["label"] for kind in (
            "Input.Date", "Input.Time", "Input.Text", "Input.Number", "Input.ChoiceSet",
            "Input.Toggle",
        )}  # fmt: skip
        choice = _inputs_of_type(card, "Input.ChoiceSet")[0]["choices"][1]
        go = next(a for a in find_actions(card) if a["type"] == "Action.Execute")
        day = datetime.now(UTC).date() + timedelta(days=40)  # at least one "next month"

        shots = tmp_path / "shots"
        result = await run_ui_steps(
            pg.base_url,
            [
                {"send": "card"},
                {"waitText": card_text(card).splitlines()[0]},
                {"fillDate": {"label": label["Input.Date"], "date": day.isoformat()}},
                {"fillTime": {"label": label["Input.Time"], "time": "2:00 PM"}},
                {"fillText": {"label": label["Input.Text"], "text": "Weekly sync"}},
                {"fillNumber": {"label": label["Input.Number"], "value": 7}},
                {"select": {"label": label["Input.ChoiceSet"], "option": choice["title"]}},
                {"toggle": {"label": label["Input.Toggle"], "checked": True}},
                {"screenshot": "filled"},
                {"click": go["title"]},
                {"waitText": f"verb={go['verb']}"},
                {"screenshot": "answered"},
            ],
            shots,
        )
        assert result["ok"], result
        # Only foreign requests (the UI's CDN fonts) were aborted.
        assert not [url for url in result["blocked"] if url.startswith(pg.base_url)]
        for name in ("filled", "answered"):
            assert (shots / f"{name}.png").stat().st_size > 0

        ids = {kind: _inputs_of_type(card, kind)[0]["id"] for kind in label}
        expected = {
            ids["Input.Date"]: day.isoformat(),
            ids["Input.Time"]: "14:00",
            ids["Input.Text"]: "Weekly sync",
            ids["Input.Number"]: "7",
            ids["Input.ChoiceSet"]: choice["value"],
            ids["Input.Toggle"]: _inputs_of_type(card, "Input.Toggle")[0]["valueOn"],
        }
        shown = result["lastCardText"]
        for key, value in expected.items():
            assert f"data.{key}={json.dumps(value)}" in shown, shown
        # The bot got the UI's invoke with the inputs merged into the action's data.
        invoke = bot.activities[-1]
        assert invoke["name"] == "adaptiveCard/action"
        assert invoke["value"]["action"]["data"] == action_data(go, expected)
        assert "trigger" not in invoke["value"]  # the web UI sends none


@pytest.mark.e2e
@pytest.mark.browser
async def test_ui_choice_sets_and_failures(tmp_path: Path) -> None:
    require_browser()
    async with (
        ScratchBot(free_port()) as bot,
        Playground(bot.endpoint, log_dir=tmp_path / "playground") as pg,
    ):
        await pg.send_message("choices")
        card = (await pg.wait_for_card()).card
        sets = {node["id"]: node for node in _inputs_of_type(card, "Input.ChoiceSet")}
        notes = _inputs_of_type(card, "Input.Text")[0]
        send = find_actions(card)[0]

        def titles(set_id: str, *indexes: int) -> list[str]:
            return [sets[set_id]["choices"][i]["title"] for i in indexes]

        def values(set_id: str, *indexes: int) -> str:
            return ",".join(sets[set_id]["choices"][i]["value"] for i in indexes)

        shots = tmp_path / "shots"
        result = await run_ui_steps(
            pg.base_url,
            [
                {"send": "choices"},
                {"select": {"label": sets["floor"]["label"], "option": titles("floor", 2)[0]}},
                {"select": {"label": sets["colours"]["label"], "option": titles("colours", 0, 2)}},
                {"select": {"label": sets["extras"]["label"], "option": titles("extras", 0, 2)}},
                {"fillText": {"label": notes["label"], "text": "line one\nline two"}},
                {"click": send["title"]},
                {"waitText": f"verb={send['verb']}"},
                {"fillTime": {"label": "Nowhere", "time": "2:00 PM"}, "timeout": 2000},
            ],
            shots,
        )
        # The last step fails on purpose: the error names it and a screenshot is taken.
        assert not result["ok"]
        assert result["step"] == 7
        assert "Nowhere" in result["error"]
        assert (shots / "failure-step-7.png").stat().st_size > 0
        data = bot.activities[-1]["value"]["action"]["data"]
        assert data["floor"] == values("floor", 2)
        assert data["colours"] == values("colours", 0, 2)
        assert data["extras"] == values("extras", 0, 2)
        assert data[notes["id"]] == "line one\nline two"
