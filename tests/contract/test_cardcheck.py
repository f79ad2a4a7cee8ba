"""Self-tests of tests/support/cardcheck.py.

A clean card passes every check, and each defect is caught by the right check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from microsoft_teams.cards import (
    ActionSet,
    AdaptiveCard,
    Choice,
    ChoiceSetInput,
    Column,
    ColumnSet,
    Container,
    DateInput,
    ExecuteAction,
    Fact,
    FactSet,
    NumberInput,
    RefreshDefinition,
    ShowCardAction,
    TextBlock,
    TextInput,
    TimeInput,
    ToggleInput,
)

from tests.support import cardcheck
from tests.support.cardcheck import (
    check_cards,
    invariant_problems,
    renderer_warnings,
    schema_problems,
)
from tests.support.prereq import node_available, require, shared_dir

Card = dict[str, Any]

KNOWN_VERBS = frozenset({"booking.check", "booking.confirm", "booking.cancel", "booking.refresh"})
NODE_REASON = (
    "the renderer check needs node and tests/js/node_modules/adaptivecards (run npm ci in tests/js)"
)


@pytest.fixture(autouse=True)
def _schema_present() -> None:
    require(
        cardcheck.schema_path() is not None,
        f"Adaptive Card schema missing under {shared_dir()}/schemas",
    )


def clean_card() -> Card:
    """A booking card with every element and input the bot uses, built with models."""
    card = AdaptiveCard(
        refresh=RefreshDefinition(
            action=ExecuteAction(verb="booking.refresh", data={"bookingId": "b-1"}),
            user_ids=["user-1"],
        ),
        body=[
            TextBlock(text="Book a room", weight="Bolder", size="Medium", wrap=True),
            FactSet(
                facts=[
                    Fact(title="Room", value="Aurora"),
                    Fact(title="Floor", value="3"),
                ]
            ),
            ColumnSet(
                columns=[
                    Column(width="auto", items=[TextBlock(text="When")]),
                    Column(
                        width="stretch",
                        items=[
                            DateInput(
                                id="date",
                                label="Date",
                                is_required=True,
                                error_message="Pick a date",
                            ),
                            TimeInput(
                                id="start",
                                label="Start",
                                is_required=True,
                                error_message="Pick a time",
                            ),
                        ],
                    ),
                ]
            ),
            Container(
                items=[
                    ChoiceSetInput(
                        id="equipment",
                        label="Equipment",
                        is_multi_select=True,
                        choices=[
                            Choice(title="Projector", value="projector"),
                            Choice(title="Whiteboard", value="whiteboard"),
                        ],
                    ),
                    ToggleInput(id="catering", label="Catering", title="Order catering"),
                    NumberInput(
                        id="attendees",
                        label="Attendees",
                        min=1,
                        max=20,
                        is_required=True,
                        error_message="Between 1 and 20 people",
                    ),
                    TextInput(id="note", label="Note", is_multiline=True),
                ]
            ),
            ActionSet(
                actions=[ExecuteAction(title="Check", verb="booking.check", data={"roomId": "r-1"})]
            ),
        ],
        actions=[
            ExecuteAction(title="Book", verb="booking.confirm", data={"roomId": "r-1"}),
            ShowCardAction(
                title="Cancel",
                card=AdaptiveCard(
                    body=[TextInput(id="reason", label="Reason")],
                    actions=[
                        ExecuteAction(
                            title="Cancel booking",
                            verb="booking.cancel",
                            data={"bookingId": "b-1"},
                        )
                    ],
                ),
            ),
        ],
    )
    dumped: Card = card.model_dump(by_alias=True, exclude_none=True)
    return dumped


def appended(element: Card) -> tuple[Card, str]:
    """The clean card with one more body element, and that element's JSON path."""
    card = clean_card()
    card["body"].append(element)
    return card, f"$.body[{len(card['body']) - 1}]"


def with_action(action: Card) -> tuple[Card, str]:
    """The clean card with one more card-level action, and that action's JSON path."""
    card = clean_card()
    card["actions"].append(action)
    return card, f"$.actions[{len(card['actions']) - 1}]"


# The clean card with one defect added each; the renderer checks all in one node run.
DEFECTS: dict[str, Callable[[], Card]] = {
    "clean": clean_card,
    "unknown_element": lambda: appended({"type": "Bogus.Element", "text": "x"})[0],
    "bad_enum": lambda: appended({"type": "TextBlock", "text": "x", "weight": "Heaviest"})[0],
    "unknown_root_property": lambda: {**clean_card(), "colour": "blue"},
    "missing_label": lambda: appended({"type": "Input.Text", "id": "floor"})[0],
    "required_without_error_message": lambda: appended(
        {"type": "Input.Text", "id": "floor", "label": "Floor", "isRequired": True}
    )[0],
    "execute_without_verb": lambda: with_action({"type": "Action.Execute", "title": "Go"})[0],
    "duplicate_id": lambda: appended({"type": "Input.Text", "id": "date", "label": "Other date"})[
        0
    ],
    "submit": lambda: with_action({"type": "Action.Submit", "title": "Send"})[0],
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[str]]:
    require(node_available(), NODE_REASON)
    return renderer_warnings({name: build() for name, build in DEFECTS.items()})


# --- the clean card -------------------------------------------------------------------


def test_clean_card_matches_the_schema() -> None:
    card = clean_card()

    problems = schema_problems(card)

    assert problems == []


def test_clean_card_keeps_the_invariants() -> None:
    card = clean_card()

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == []


def test_clean_card_has_no_renderer_warnings(rendered: dict[str, list[str]]) -> None:
    assert rendered["clean"] == []


def test_full_width_msteams_with_a_mention_is_accepted() -> None:
    card = clean_card()
    card["msteams"] = {
        "width": "Full",
        "entities": [
            {
                "type": "mention",
                "text": "<at>Ada</at>",
                "mentioned": {"id": "29:1abc", "name": "Ada Lovelace"},
            }
        ],
    }

    problems = schema_problems(card)

    assert problems == []


# --- schema ---------------------------------------------------------------------------


def test_schema_reports_unknown_element_type() -> None:
    card, path = appended({"type": "Bogus.Element", "text": "x"})

    problems = schema_problems(card)

    assert len(problems) == 1
    assert problems[0].startswith(
        f"{path}: unknown type 'Bogus.Element' here; expected one of ['ActionSet',"
    )


def test_schema_reports_element_without_type() -> None:
    card, path = appended({"text": "x"})

    problems = schema_problems(card)

    assert problems == [f"{path}: 'type' must name an element or action"]


def test_schema_reports_bad_enum_value() -> None:
    card, path = appended({"type": "TextBlock", "text": "x", "weight": "Heaviest"})

    problems = schema_problems(card)

    assert problems == [f"{path}.weight: 'Heaviest' is not one of ['default', 'lighter', 'bolder']"]


def test_schema_reports_unknown_root_property() -> None:
    card = {**clean_card(), "colour": "blue"}

    problems = schema_problems(card)

    assert problems == ["$: Additional properties are not allowed ('colour' was unexpected)"]


def test_schema_reports_unknown_property_of_a_nested_input() -> None:
    card = clean_card()
    card["body"][3]["items"][3]["multiline"] = True

    problems = schema_problems(card)

    assert problems == [
        "$.body[3].items[3]: Additional properties are not allowed ('multiline' was unexpected)"
    ]


def test_schema_reports_unknown_msteams_key() -> None:
    card = clean_card()
    card["msteams"] = {"width": "Full", "height": "Tall"}

    problems = schema_problems(card)

    assert problems == [
        "$.msteams: unknown property 'height' (Teams documents only ['entities', 'width'])"
    ]


def test_schema_reports_msteams_width_other_than_full() -> None:
    card = clean_card()
    card["msteams"] = {"width": "full"}

    problems = schema_problems(card)

    assert problems == ["$.msteams.width: must be 'Full', got 'full'"]


def test_schema_reports_malformed_mention_entity() -> None:
    card = clean_card()
    card["msteams"] = {
        "entities": [{"type": "mention", "text": "<at>Ada</at>", "mentioned": {"id": "29:1abc"}}]
    }

    problems = schema_problems(card)

    assert problems == ["$.msteams.entities[0].mentioned.name: must be a non-empty string"]


# --- invariants -----------------------------------------------------------------------


def test_invariants_report_input_without_label() -> None:
    card, path = appended({"type": "Input.Text", "id": "floor"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [f"{path} (Input.Text 'floor'): input has no label"]


def test_invariants_report_input_with_blank_label_and_no_id() -> None:
    card, path = appended({"type": "Input.Toggle", "title": "Yes", "label": "  "})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [
        f"{path} (Input.Toggle): input has no id",
        f"{path} (Input.Toggle): input has no label",
    ]


def test_invariants_report_required_input_without_error_message() -> None:
    card, path = appended(
        {"type": "Input.Text", "id": "floor", "label": "Floor", "isRequired": True}
    )

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [f"{path} (Input.Text 'floor'): required input has no errorMessage"]


def test_invariants_report_execute_without_verb() -> None:
    card, path = with_action({"type": "Action.Execute", "title": "Go"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [f"{path} (Action.Execute): Action.Execute has no verb"]


def test_invariants_report_unknown_verb() -> None:
    card, path = with_action({"type": "Action.Execute", "title": "Go", "verb": "booking.teleport"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [f"{path} (Action.Execute): unknown verb 'booking.teleport'"]


def test_invariants_report_execute_data_that_is_not_an_object() -> None:
    card, path = with_action(
        {
            "type": "Action.Execute",
            "title": "Go",
            "verb": "booking.confirm",
            "data": "r-1",
        }
    )

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [
        f"{path} (Action.Execute): Action.Execute data must be an object, got 'r-1'"
    ]


def test_invariants_report_duplicate_id() -> None:
    card, path = appended({"type": "Input.Text", "id": "date", "label": "Other date"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [
        f"{path} (Input.Text 'date'): duplicate id 'date' (first at $.body[2].columns[1].items[0])"
    ]


def test_invariants_report_duplicate_id_between_element_and_show_card_input() -> None:
    card = clean_card()
    card["body"][0]["id"] = "reason"

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [
        "$.actions[1].card.body[0] (Input.Text 'reason'): "
        "duplicate id 'reason' (first at $.body[0])"
    ]


def test_invariants_allow_fallback_to_repeat_its_owner_id() -> None:
    card, _ = appended(
        {
            "type": "Input.Text",
            "id": "floor",
            "label": "Floor",
            "fallback": {"type": "Input.Text", "id": "floor", "label": "Floor"},
        }
    )

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == []


def test_invariants_report_action_submit() -> None:
    card, path = with_action({"type": "Action.Submit", "title": "Send"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [
        f"{path} (Action.Submit): Action.Submit is not used here; use Action.Execute with a verb"
    ]


def test_invariants_report_version_other_than_1_5() -> None:
    card = {**clean_card(), "version": "1.6"}

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == ["$.version: must be '1.5', got '1.6'"]


def test_invariants_report_card_type_other_than_adaptive_card() -> None:
    card = clean_card()
    del card["type"]

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == ["$.type: must be 'AdaptiveCard', got None"]


def _place_in_refresh(card: Card, action: Card) -> str:
    card["refresh"]["action"] = {key: value for key, value in action.items() if key != "type"}
    return "$.refresh.action"


def _place_in_show_card(card: Card, action: Card) -> str:
    card["actions"][1]["card"]["actions"].append(action)
    return "$.actions[1].card.actions[1]"


def _place_as_select_action(card: Card, action: Card) -> str:
    card["body"][3]["selectAction"] = action
    return "$.body[3].selectAction"


def _place_as_inline_action(card: Card, action: Card) -> str:
    card["body"][3]["items"][3]["inlineAction"] = action
    return "$.body[3].items[3].inlineAction"


def _place_in_nested_action_set(card: Card, action: Card) -> str:
    card["body"][2]["columns"][0]["items"].append({"type": "ActionSet", "actions": [action]})
    return "$.body[2].columns[0].items[1].actions[0]"


def _place_in_fallback(card: Card, action: Card) -> str:
    card["body"][4]["fallback"] = {"type": "ActionSet", "actions": [action]}
    return "$.body[4].fallback.actions[0]"


@pytest.mark.parametrize(
    "place",
    [
        _place_in_refresh,
        _place_in_show_card,
        _place_as_select_action,
        _place_as_inline_action,
        _place_in_nested_action_set,
        _place_in_fallback,
    ],
)
def test_invariants_find_unknown_verb_wherever_the_action_is(
    place: Callable[[Card, Card], str],
) -> None:
    card = clean_card()
    path = place(card, {"type": "Action.Execute", "title": "Go", "verb": "booking.teleport"})

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == [f"{path} (Action.Execute): unknown verb 'booking.teleport'"]


def test_invariants_ignore_type_keys_inside_action_data() -> None:
    card, _ = with_action(
        {
            "type": "Action.Execute",
            "title": "Go",
            "verb": "booking.confirm",
            "data": {"type": "Action.Submit"},
        }
    )

    problems = invariant_problems(card, KNOWN_VERBS)

    assert problems == []


# --- renderer -------------------------------------------------------------------------


def test_renderer_reports_unknown_element_type(rendered: dict[str, list[str]]) -> None:
    assert rendered["unknown_element"] == [
        'Parse/UnknownElementType: Unknown element type "Bogus.Element". '
        "Fallback will be used if present."
    ]


def test_renderer_reports_bad_enum_value(rendered: dict[str, list[str]]) -> None:
    assert rendered["bad_enum"] == [
        'Parse/InvalidPropertyValue [TextBlock]: Invalid value "Heaviest" for property "weight".'
    ]


def test_renderer_reports_required_input_without_error_message(
    rendered: dict[str, list[str]],
) -> None:
    assert rendered["required_without_error_message"] == [
        "Validation/RequiredInputsShouldHaveErrorMessage [Input.Text#floor]: "
        "Required inputs should have an error message"
    ]


def test_renderer_reports_duplicate_id(rendered: dict[str, list[str]]) -> None:
    assert rendered["duplicate_id"] == [
        'Validation/DuplicateId [Input.Text#date]: Duplicate Id "date".'
    ]


@pytest.mark.parametrize(
    "name", ["unknown_root_property", "missing_label", "execute_without_verb", "submit"]
)
def test_renderer_is_silent_on_what_only_our_other_checks_catch(
    rendered: dict[str, list[str]], name: str
) -> None:
    # Why the schema and invariant checks exist beside the renderer: it accepts these.
    assert rendered[name] == []


def test_renderer_failure_raises_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require(node_available(), NODE_REASON)
    monkeypatch.setattr(
        cardcheck, "node_tools", lambda: tmp_path
    )  # a directory without validate-cards.js

    with pytest.raises(
        RuntimeError,
        match=r"(?s)validate-cards\.js exited with status 1: .*Cannot find module",
    ):
        renderer_warnings({"clean": clean_card()})


# --- all together ---------------------------------------------------------------------


def test_check_cards_lists_only_cards_with_problems_and_names_each_check() -> None:
    require(node_available(), NODE_REASON)
    cards = {name: build() for name, build in DEFECTS.items()}

    result = check_cards(cards, KNOWN_VERBS)

    assert sorted(result) == sorted(name for name in DEFECTS if name != "clean")
    assert result["required_without_error_message"] == [
        "invariant: $.body[5] (Input.Text 'floor'): required input has no errorMessage",
        "renderer: Validation/RequiredInputsShouldHaveErrorMessage [Input.Text#floor]: "
        "Required inputs should have an error message",
    ]
    assert result["unknown_root_property"] == [
        "schema: $: Additional properties are not allowed ('colour' was unexpected)"
    ]


def test_check_cards_without_renderer_still_runs_schema_and_invariants() -> None:
    cards = {"clean": clean_card(), "submit": DEFECTS["submit"]()}

    result = check_cards(cards, KNOWN_VERBS, use_renderer=False)

    assert result == {
        "submit": [
            "invariant: $.actions[2] (Action.Submit): "
            "Action.Submit is not used here; use Action.Execute with a verb"
        ]
    }
