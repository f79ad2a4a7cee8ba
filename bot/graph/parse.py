"""Tolerant readers from Graph JSON to our models.

Graph's documentation examples and its schema disagree in places (the List places example sends
`"capacity": "50"`, `isWheelchairAccessible` and `displayDevice` where the room schema says Int32,
`isWheelChairAccessible` and `displayDeviceName`), and tenants leave most room fields empty. So
every reader here accepts both spellings, strings for numbers and missing fields, and falls back
to a safe default instead of failing the whole list.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import cast

from bot.graph.models import (
    RESPONSE_STATUSES,
    GraphEvent,
    OnlineMeeting,
    Person,
    ResponseStatus,
    RoomList,
    ScheduleItem,
)
from bot.graph.timezones import resolve_zone
from bot.models import Equipment, Room

logger = logging.getLogger(__name__)

JsonObject = dict[str, object]

UNKNOWN_BUILDING = "Unknown building"

# Words in a room's tags that tell its equipment (lower case, matched as whole words or phrases).
_TAG_EQUIPMENT: dict[Equipment, tuple[str, ...]] = {
    Equipment.WHITEBOARD: ("whiteboard", "white board", "whiteboards", "flipchart"),
    Equipment.DISPLAY: (
        "display",
        "screen",
        "monitor",
        "tv",
        "projector",
        "surface hub",
        "displays",
        "screens",
    ),
    Equipment.VIDEO: ("video", "camera", "videoconference", "video conferencing", "teams room"),
    Equipment.PHONE: ("phone", "telephone", "speakerphone", "conference phone", "audio"),
}
_APPROVAL_TAGS = frozenset({"approval", "approval required", "requires approval"})
_DIGITS = re.compile(r"-?\d+")


# -- primitives ------------------------------------------------------------------------------
def as_object(value: object) -> JsonObject | None:
    """The value as a JSON object, or None."""
    if isinstance(value, dict):
        return cast(JsonObject, value)
    return None


def as_list(value: object) -> list[object]:
    """The value as a JSON array (empty when it is anything else)."""
    if isinstance(value, list):
        return cast(list[object], value)
    return []


def get_str(obj: JsonObject, *keys: str) -> str | None:
    """The first non-blank string among `keys`, stripped."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def get_bool(obj: JsonObject, *keys: str) -> bool | None:
    """The first boolean among `keys` (also "true"/"false" strings)."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
    return None


def to_int(value: object) -> int | None:
    """An integer from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.0*", text):
            return int(text.split(".")[0])
    return None


def parse_datetime(value: object) -> datetime | None:
    """An aware UTC datetime from a dateTimeTimeZone object or an ISO 8601 string.

    A naive `dateTime` is read in its `timeZone` (Windows or IANA name; UTC when absent).
    """
    zone_name: str | None = None
    obj = as_object(value)
    if obj is not None:
        zone_name = get_str(obj, "timeZone")
        value = obj.get("dateTime")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        zone = resolve_zone(zone_name) if zone_name else UTC
        if zone is None:
            logger.warning("unknown time zone %r in a Graph answer, read as UTC", zone_name)
            zone = UTC
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


# -- places ----------------------------------------------------------------------------------
def parse_room_list(raw: object) -> RoomList | None:
    """A room list, or None when it has no email address."""
    obj = as_object(raw)
    if obj is None:
        return None
    email = get_str(obj, "emailAddress")
    if email is None:
        return None
    return RoomList(email=email.lower(), name=get_str(obj, "displayName") or email)


def parse_room(raw: object, *, list_name: str | None = None) -> Room | None:
    """A room from a Graph `room` place; None when it has no email address (not bookable)."""
    obj = as_object(raw)
    if obj is None:
        return None
    email = get_str(obj, "emailAddress")
    if email is None:
        logger.warning("skipping a Graph room without emailAddress (id %s)", get_str(obj, "id"))
        return None
    email = email.lower()

    floor_label = get_str(obj, "floorLabel")
    floor = to_int(obj.get("floorNumber"))
    if floor is None and floor_label is not None:
        digits = _DIGITS.search(floor_label)
        floor = int(digits.group()) if digits else None
    if floor is None:
        floor = 0
    capacity = to_int(obj.get("capacity"))

    tags = [tag.strip().lower() for tag in as_list(obj.get("tags")) if isinstance(tag, str)]
    booking_type = (get_str(obj, "bookingType") or "").lower()
    return Room(
        id=email,
        name=get_str(obj, "displayName", "nickname") or email,
        email=email,
        building=get_str(obj, "building") or list_name or UNKNOWN_BUILDING,
        floor=floor,
        floor_label=floor_label or f"Floor {floor}",
        capacity=max(capacity or 0, 0),
        equipment=_equipment(obj, tags),
        wheelchair_accessible=bool(
            get_bool(obj, "isWheelChairAccessible", "isWheelchairAccessible")
        ),
        needs_approval=booking_type == "reserved" or any(tag in _APPROVAL_TAGS for tag in tags),
    )


def _equipment(obj: JsonObject, tags: list[str]) -> frozenset[Equipment]:
    found: set[Equipment] = set()
    if get_str(obj, "displayDeviceName", "displayDevice"):
        found.add(Equipment.DISPLAY)
    if get_str(obj, "videoDeviceName", "videoDevice"):
        found.add(Equipment.VIDEO)
    if get_str(obj, "audioDeviceName", "audioDevice"):
        found.add(Equipment.PHONE)
    for tag in tags:
        words = " ".join(re.findall(r"[a-z0-9]+", tag))
        padded = f" {words} "
        for equipment, phrases in _TAG_EQUIPMENT.items():
            if any(f" {phrase} " in padded for phrase in phrases):
                found.add(equipment)
    return frozenset(found)


# -- schedules -------------------------------------------------------------------------------
def parse_schedule_items(raw_items: object) -> list[ScheduleItem]:
    """The schedule items that have a readable span (others are logged and dropped)."""
    items: list[ScheduleItem] = []
    for raw in as_list(raw_items):
        obj = as_object(raw)
        if obj is None:
            continue
        start = parse_datetime(obj.get("start"))
        end = parse_datetime(obj.get("end"))
        if start is None or end is None:
            logger.warning("getSchedule item without a readable start/end, ignored")
            continue
        items.append(ScheduleItem(start=start, end=end, status=get_str(obj, "status") or ""))
    return items


# -- events ----------------------------------------------------------------------------------
def parse_event(raw: object) -> GraphEvent:
    """An event; ValueError when it lacks an id, start or end."""
    obj = as_object(raw)
    if obj is None:
        raise ValueError("event is not an object")
    event_id = get_str(obj, "id")
    start = parse_datetime(obj.get("start"))
    end = parse_datetime(obj.get("end"))
    if event_id is None or start is None or end is None:
        raise ValueError("event without id, start or end")

    organizer: str | None = None
    organizer_obj = as_object(obj.get("organizer"))
    if organizer_obj is not None:
        address = as_object(organizer_obj.get("emailAddress"))
        if address is not None:
            found = get_str(address, "address")
            organizer = found.lower() if found else None

    join_url: str | None = None
    online = as_object(obj.get("onlineMeeting"))
    if online is not None:
        join_url = get_str(online, "joinUrl")
    join_url = join_url or get_str(obj, "onlineMeetingUrl")

    return GraphEvent(
        id=event_id,
        subject=get_str(obj, "subject") or "",
        start=start,
        end=end,
        organizer=organizer,
        join_url=join_url,
        is_online_meeting=bool(get_bool(obj, "isOnlineMeeting")),
        room_responses=_room_responses(obj),
        transaction_id=get_str(obj, "transactionId"),
        is_cancelled=bool(get_bool(obj, "isCancelled")),
        web_link=get_str(obj, "webLink"),
    )


def _room_responses(obj: JsonObject) -> dict[str, ResponseStatus]:
    """Each resource attendee's answer by lower-case email (rooms start at `none`)."""
    responses: dict[str, ResponseStatus] = {}
    for raw in as_list(obj.get("attendees")):
        attendee = as_object(raw)
        if attendee is None or (get_str(attendee, "type") or "").lower() != "resource":
            continue
        address_obj = as_object(attendee.get("emailAddress"))
        address = get_str(address_obj, "address") if address_obj is not None else None
        if address is None:
            continue
        status_obj = as_object(attendee.get("status"))
        response = (get_str(status_obj, "response") if status_obj is not None else None) or "none"
        if response not in RESPONSE_STATUSES:
            logger.debug("unknown attendee response %r read as none", response)
            response = "none"
        responses[address.lower()] = cast(ResponseStatus, response)
    return responses


def parse_online_meeting(raw: object) -> OnlineMeeting:
    """A standalone online meeting; ValueError when it lacks an id or join link."""
    obj = as_object(raw)
    if obj is None:
        raise ValueError("online meeting is not an object")
    meeting_id = get_str(obj, "id")
    # v1.0 names the link joinWebUrl; joinUrl is the older, deprecated name.
    join_url = get_str(obj, "joinWebUrl", "joinUrl")
    if meeting_id is None or join_url is None:
        raise ValueError("online meeting without id or join link")
    return OnlineMeeting(
        id=meeting_id,
        join_url=join_url,
        subject=get_str(obj, "subject") or "",
        start=parse_datetime(obj.get("startDateTime")),
        end=parse_datetime(obj.get("endDateTime")),
    )


def parse_person(raw: object) -> Person:
    """A directory user; ValueError when it has no id."""
    obj = as_object(raw)
    person_id = get_str(obj, "id") if obj is not None else None
    if obj is None or person_id is None:
        raise ValueError("user without id")
    email = get_str(obj, "mail", "userPrincipalName")
    return Person(
        id=person_id,
        name=get_str(obj, "displayName") or email or person_id,
        email=email.lower() if email else None,
    )
