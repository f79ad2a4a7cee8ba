"""The local room directory and its YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.directory.local import RoomDirectoryError, load_rooms_file
from bot.models import Equipment


def test_the_demo_office_is_realistic(demo_rooms_file: Path) -> None:
    rooms = load_rooms_file(demo_rooms_file)

    assert 18 <= len(rooms) <= 24
    assert {room.building for room in rooms} == {"Harbour House", "Riverside"}
    assert len({(room.building, room.floor) for room in rooms}) >= 5
    assert len({room.id for room in rooms}) == len(rooms)
    assert {e for room in rooms for e in room.equipment} == set(Equipment)
    assert any(room.needs_approval for room in rooms)
    assert any(room.wheelchair_accessible for room in rooms)
    assert min(room.capacity for room in rooms) <= 2 <= 40 == max(r.capacity for r in rooms)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rooms.yaml"
    path.write_text(text, encoding="utf-8")
    return path


ROOM = "{id: a, name: A, email: a@x.example, capacity: 4}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("buildings: [", "not valid YAML"),
        ("buildings: []", "buildings"),
        (
            f"buildings: [{{name: B, floors: [{{floor: 1, rooms: [{ROOM}, {ROOM}]}}]}}]",
            "appears twice",
        ),
        (
            "buildings: [{name: B, floors: [{floor: 1, rooms: "
            "[{id: a, name: A, email: a@x.example, capacity: 4, equipment: [jetpack]}]}]}]",
            "equipment",
        ),
        (
            "buildings: [{name: B, floors: [{floor: 1, rooms: "
            "[{id: a, name: A, email: a@x.example, capacity: 0}]}]}]",
            "capacity",
        ),
        (
            f"buildings: [{{name: B, colour: red, floors: [{{floor: 1, rooms: [{ROOM}]}}]}}]",
            "colour",
        ),
    ],
)
def test_a_broken_rooms_file_is_explained(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(RoomDirectoryError) as caught:
        load_rooms_file(path)

    assert str(path) in str(caught.value)
    assert words in str(caught.value)


def test_a_missing_rooms_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RoomDirectoryError, match="cannot read"):
        load_rooms_file(tmp_path / "nowhere.yaml")


def test_floor_labels_default_to_the_number(tmp_path: Path) -> None:
    rooms = load_rooms_file(
        write(tmp_path, f"buildings: [{{name: B, floors: [{{floor: 4, rooms: [{ROOM}]}}]}}]")
    )

    assert rooms[0].floor_label == "Floor 4"
    assert rooms[0].location == "B, Floor 4"
