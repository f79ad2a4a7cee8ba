"""Reading Adaptive Cards in tests: inputs by id, actions, texts, as a Teams client sees them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Card = Mapping[str, Any]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in the card, depth first, in document order."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def inputs(card: Card) -> dict[str, dict[str, Any]]:
    """The card's inputs by id."""
    return {
        node["id"]: node
        for node in walk(card)
        if str(node.get("type", "")).startswith("Input.") and "id" in node
    }


def input_value(node: Mapping[str, Any]) -> str:
    """The value a Teams client sends for an input left as the card shows it (always text)."""
    value = node.get("value")
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def input_values(card: Card) -> dict[str, str]:
    """What pressing a button sends for the card's inputs when the user changes nothing."""
    return {input_id: input_value(node) for input_id, node in inputs(card).items()}


def execute_actions(card: Card, verb: str | None = None) -> list[dict[str, Any]]:
    """The card's `Action.Execute` buttons (body and actions), optionally only of one verb."""
    return [
        node
        for node in walk(card)
        if node.get("type") == "Action.Execute" and (verb is None or node.get("verb") == verb)
    ]


def action_titled(card: Card, title: str) -> dict[str, Any]:
    """The one `Action.Execute` with this title."""
    found = [node for node in execute_actions(card) if node.get("title") == title]
    titles = [node.get("title") for node in execute_actions(card)]
    assert len(found) == 1, f"expected one action titled {title!r}; the card has {titles}"
    return found[0]


# The inputs of the booking form, by id, in the order the form shows them.
BOOKING_FORM_INPUTS = (
    "date",
    "start",
    "duration",
    "end",
    "attendees",
    "building",
    "floor",
    "equipment",
    "repeat",
    "occurrences",
    "subject",
    "online",
)


def book_actions(card: Card) -> list[dict[str, Any]]:
    """The Book buttons of a results card (`Book <room>`, one per free room), read from the card."""
    return [
        action
        for action in execute_actions(card)
        if str(action.get("title", "")).startswith("Book ") and action.get("title") != "Book a room"
    ]


def book_action(card: Card, room_name: str) -> dict[str, Any]:
    """The Book button of one room (plain `Book <room>`)."""
    return action_titled(card, f"Book {room_name}")


def texts(card: Card) -> list[str]:
    """The texts a reader sees: TextBlocks and facts (`title: value`)."""
    found: list[str] = []
    for node in walk(card):
        kind = node.get("type")
        if kind == "TextBlock" and isinstance(node.get("text"), str):
            found.append(node["text"])
        elif kind == "FactSet":
            found.extend(f"{fact.get('title')}: {fact.get('value')}" for fact in node["facts"])
    return found


def text_of(card: Card) -> str:
    """All visible text, one block per line (for `in` checks)."""
    return "\n".join(texts(card))


def facts(card: Card) -> dict[str, str]:
    """The card's facts, title to value (the last wins)."""
    return {
        str(fact.get("title")): str(fact.get("value"))
        for node in walk(card)
        if node.get("type") == "FactSet"
        for fact in node.get("facts", [])
    }


def headline(card: Card) -> str:
    """The first TextBlock's text (each card starts with its heading)."""
    for node in walk(card.get("body", [])):
        if node.get("type") == "TextBlock":
            return str(node.get("text"))
    raise AssertionError("the card has no TextBlock")
