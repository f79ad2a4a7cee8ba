"""Building blocks shared by every card: the card envelope, headings, messages, formatting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from microsoft_teams.cards import (
    ActionSet,
    AdaptiveCard,
    CardElement,
    Container,
    ContainerStyle,
    ExecuteAction,
    OpenUrlAction,
    RefreshDefinition,
    TextBlock,
)

from bot.commands import Verb

Card = dict[str, Any]
APP_NAME = "Frontdesk"
_TONES: dict[str, ContainerStyle] = {"attention": "attention", "warning": "warning", "good": "good"}


def render(
    body: Sequence[CardElement],
    *,
    actions: Sequence[ExecuteAction | OpenUrlAction] = (),
    fallback_text: str,
    full_width: bool = False,
    refresh: RefreshDefinition | None = None,
) -> Card:
    """Serialise a card as Teams expects it (schema 1.5, no nulls)."""
    card = AdaptiveCard(
        version="1.5",
        body=list(body),
        actions=list(actions) or None,
        fallback_text=fallback_text,
        refresh=refresh,
    )
    data: Card = card.model_dump(by_alias=True, exclude_none=True)
    data["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json"
    if full_width:
        data["msteams"] = {"width": "Full"}
    return data


def auto_refresh(verb: Verb, data: Mapping[str, Any], user_ids: Sequence[str]) -> RefreshDefinition:
    """Teams asks the bot for a fresh card when one of these users (at most 60) views it."""
    return RefreshDefinition(action=action("Refresh", verb, data), user_ids=list(user_ids)[:60])


def action(
    title: str,
    verb: Verb,
    data: Mapping[str, Any] | None = None,
    *,
    style: str | None = None,
) -> ExecuteAction:
    """An `Action.Execute` with a known verb; `data` carries ids only."""
    return ExecuteAction(
        title=title,
        verb=verb.value,
        data=dict(data or {}),
        style=style,
    )


def heading(text: str, subtitle: str | None = None) -> list[CardElement]:
    blocks: list[CardElement] = [
        TextBlock(text=text, size="Large", weight="Bolder", wrap=True, style="heading")
    ]
    if subtitle:
        blocks.append(TextBlock(text=subtitle, wrap=True, is_subtle=True, spacing="Small"))
    return blocks


def notice(message: str, *, tone: str = "attention") -> Container:
    """A highlighted message at the top of a card (an error, a warning, good news).

    The container's style carries the tone; the text keeps the default colour for contrast.
    """
    style = _TONES.get(tone, "emphasis")
    return Container(style=style, items=[TextBlock(text=message, wrap=True, weight="Bolder")])


def buttons(*actions: ExecuteAction) -> ActionSet:
    return ActionSet(actions=list(actions))


def message_card(title: str, text: str, *, actions: Sequence[ExecuteAction] = ()) -> Card:
    """A plain card with a heading, a paragraph and optional buttons."""
    return render(
        [*heading(title), TextBlock(text=text, wrap=True)],
        actions=actions,
        fallback_text=f"{title}: {text}",
    )


def local_time(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def format_day(moment: datetime, zone: ZoneInfo) -> str:
    """`Mon 23 Nov 2026`."""
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def format_span(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """`Mon 23 Nov 2026, 14:00–14:30` in the zone; the end date is named when it differs."""
    local_start = start.astimezone(zone)
    local_end = end.astimezone(zone)
    if local_end.date() != local_start.date():
        return (
            f"{format_day(start, zone)}, {local_start:%H:%M} – "
            f"{format_day(end, zone)}, {local_end:%H:%M}"
        )
    return f"{format_day(start, zone)}, {local_start:%H:%M}–{local_end:%H:%M}"


def zone_label(zone: ZoneInfo) -> str:
    return zone.key.replace("_", " ")
