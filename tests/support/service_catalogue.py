"""Service catalogues for tests that run the app: YAML text, and the files the app reads it from.

`catering(...)` is the category the request tests file against (people, lunch by the head, pastry
platters, notes; prices in EUR). Each test gives it its own policy and fulfilment team, and writes
its own approval policies next to it with `catalogue_settings`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def catering(
    *, policy: str, fulfilment: str, booking: str = "none", extra_fields: Iterable[str] = ()
) -> str:
    """The catering category, as one item of a catalogue's `categories` list.

    `fulfilment` is a YAML flow mapping (`{users: [<object id>]}` or `{channel: "19:..."}`);
    `extra_fields` are further fields, each a YAML flow mapping, after the usual ones.
    """
    more = "".join(f"      - {field}\n" for field in extra_fields)
    return f"""\
  - id: catering
    name: Catering
    description: Food and drinks for your meeting.
    policy: {policy}
    booking: {booking}
    fulfilment: {fulfilment}
    fields:
      - {{id: people, type: number, label: Number of people, required: true, min: 1, max: 50}}
      - id: lunch
        type: choice
        label: Lunch
        quantity_from: people
        choices:
          - {{id: sandwiches, title: Sandwich platter, unit_price: 9.50}}
          - {{id: salads, title: Salad bowls, unit_price: 11.00}}
      - {{id: pastries, type: number, label: Pastry platters, min: 0, max: 10, unit_price: 24.00}}
      - {{id: notes, type: text, label: Notes}}
{more}"""


def catalogue(*categories: str) -> str:
    """A catalogue in EUR of these categories (each one item of the `categories` list)."""
    return "currency: EUR\ncategories:\n" + "".join(categories)


def catalogue_settings(directory: Path, catalogue: str, policies: str) -> dict[str, str]:
    """Write the catalogue and the policies into `directory`; the settings naming the files."""
    catalogue_file = directory / "services.yaml"
    policies_file = directory / "policies.yaml"
    catalogue_file.write_text(catalogue, encoding="utf-8")
    policies_file.write_text(policies, encoding="utf-8")
    return {"CATALOGUE_FILE": str(catalogue_file), "POLICIES_FILE": str(policies_file)}
