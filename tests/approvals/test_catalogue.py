"""The service catalogue file, and the check of a submitted service form."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.approvals.catalogue import (
    BookingLink,
    Catalogue,
    Choice,
    ChoiceField,
    DateField,
    FulfilmentChannel,
    FulfilmentUsers,
    NumberField,
    ServiceCategory,
    TextField,
    TimeField,
    ToggleField,
    load_catalogue,
    parse_request_form,
)
from bot.approvals.errors import CatalogueError, FormError
from bot.approvals.models import WHOLE_REQUEST_ITEM_ID, RequestDetail, RequestItem
from bot.approvals.policy import PolicyBook, load_policies
from bot.errors import InputError
from tests.approvals.conftest import write

CHANNEL = "19:0a1b2c3d4e5f40718293a4b5c6d7e8f9@thread.tacv2"
ALICE = "3f2b8c1e-0d4a-4b6e-9c7f-2a1d5e8b9c0d"


# --- The shipped demo ---------------------------------------------------------------------------


def test_the_demo_catalogue_offers_the_five_categories(demo_catalogue: Catalogue) -> None:
    assert demo_catalogue.currency == "EUR"
    assert [category.id for category in demo_catalogue.categories] == [
        "catering",
        "av-support",
        "it",
        "facilities",
        "room-layout",
    ]
    assert {c.currency for c in demo_catalogue.categories} == {"EUR"}
    assert {c.policy_id for c in demo_catalogue.categories} == {"standard", "it", "room-layout"}
    assert {type(c.fulfilment) for c in demo_catalogue.categories} == {
        FulfilmentUsers,
        FulfilmentChannel,
    }
    assert {c.booking for c in demo_catalogue.categories} == set(BookingLink)


def test_the_demo_catalogue_uses_every_kind_of_field(demo_catalogue: Catalogue) -> None:
    fields = [field for category in demo_catalogue.categories for field in category.fields]

    assert {type(field) for field in fields} == {
        TextField,
        NumberField,
        ChoiceField,
        DateField,
        TimeField,
        ToggleField,
    }
    choices = [field for field in fields if isinstance(field, ChoiceField)]
    assert any(field.multiple for field in choices)
    assert any(field.quantity_from for field in choices)
    assert any(c.unit_price is None for field in choices for c in field.choices)
    assert any(isinstance(f, NumberField) and f.unit_price and not f.integer for f in fields)


def test_prices_are_kept_to_the_cent(demo_catalogue: Catalogue) -> None:
    lunch = demo_catalogue.category("catering").form_field("lunch")
    assert isinstance(lunch, ChoiceField)

    assert [str(choice.unit_price) for choice in lunch.choices] == ["9.50", "11.00", "16.50"]


# --- Broken catalogue files ---------------------------------------------------------------------


def policies_file(tmp_path: Path) -> PolicyBook:
    path = tmp_path / "policies.yaml"
    document = {
        "policies": [
            {
                "id": "standard",
                "name": "Standard",
                "fallback_channel": CHANNEL,
                "stages": [{"id": "manager", "name": "Line manager", "approvers": ["manager"]}],
            },
            {
                "id": "owners",
                "name": "Room owners",
                "fallback_channel": CHANNEL,
                "stages": [{"id": "owners", "name": "Room owners", "approvers": ["room_owners"]}],
            },
        ]
    }
    write(path, yaml.safe_dump(document))
    return load_policies(path)


CATEGORY: dict[str, Any] = {
    "id": "catering",
    "name": "Catering",
    "description": "Food and drinks.",
    "policy": "standard",
    "fulfilment": {"channel": CHANNEL},
    "fields": [
        {"id": "people", "type": "number", "label": "People", "min": 1, "max": 50},
        {
            "id": "lunch",
            "type": "choice",
            "label": "Lunch",
            "quantity_from": "people",
            "choices": [{"id": "sandwiches", "title": "Sandwiches", "unit_price": 9.5}],
        },
        {"id": "note", "type": "text", "label": "Note"},
    ],
}


def catalogue_document() -> dict[str, Any]:
    second = copy.deepcopy(CATEGORY) | {"id": "av", "name": "AV support"}
    return {"currency": "EUR", "categories": [copy.deepcopy(CATEGORY), second]}


Change = Callable[[dict[str, Any]], None]


def field(document: dict[str, Any], category: int, index: int) -> dict[str, Any]:
    found: dict[str, Any] = document["categories"][category]["fields"][index]
    return found


def setting(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(target: dict[str, Any]) -> None:
        target.update(values)

    return change


BROKEN: list[tuple[str, Change, str, str]] = [
    (
        "max below min",
        lambda d: field(d, 1, 2).update(type="number", min=5, max=1),
        "categories.1.fields.2.max",
        "must be >= min",
    ),
    (
        "unknown field type",
        lambda d: field(d, 0, 2).update(type="slider"),
        "categories.0.fields.2.type",
        "'multi_choice'",
    ),
    (
        "duplicate category id",
        lambda d: d["categories"][1].update(id="catering"),
        "categories.1.id",
        "category id 'catering' appears twice",
    ),
    (
        "duplicate field id",
        lambda d: field(d, 0, 2).update(id="people"),
        "categories.0.fields.2.id",
        "field id 'people' appears twice",
    ),
    (
        "duplicate choice id",
        lambda d: field(d, 0, 1)["choices"].append({"id": "sandwiches", "title": "Again"}),
        "categories.0.fields.1.choices.1.id",
        "choice id 'sandwiches' appears twice",
    ),
    (
        "choice without choices",
        lambda d: field(d, 0, 2).update(type="multi_choice"),
        "categories.0.fields.2.choices",
        "a multi_choice field needs at least one choice",
    ),
    (
        "empty choices",
        lambda d: field(d, 0, 1).update(choices=[]),
        "categories.0.fields.1.choices",
        "needs at least one choice",
    ),
    (
        "negative choice price",
        lambda d: field(d, 0, 1)["choices"][0].update(unit_price=-2),
        "categories.0.fields.1.choices.0.unit_price",
        "greater than or equal to 0",
    ),
    (
        "negative number price",
        lambda d: field(d, 0, 0).update(unit_price=-0.5),
        "categories.0.fields.0.unit_price",
        "greater than or equal to 0",
    ),
    (
        "price below the cent",
        lambda d: field(d, 0, 1)["choices"][0].update(unit_price=9.999),
        "categories.0.fields.1.choices.0.unit_price",
        "no more than 2 decimal places",
    ),
    (
        "unknown policy",
        lambda d: d["categories"][1].update(policy="gold"),
        "categories.1.policy",
        "unknown policy 'gold'",
    ),
    (
        "price on a text field",
        lambda d: field(d, 0, 2).update(unit_price=3),
        "categories.0.fields.2.unit_price",
        "a text field takes no unit_price",
    ),
    (
        "price on a date field",
        lambda d: field(d, 0, 2).update(type="date", unit_price=3),
        "categories.0.fields.2.unit_price",
        "a date field takes no unit_price",
    ),
    (
        "price on a choice field",
        lambda d: field(d, 0, 1).update(unit_price=3),
        "categories.0.fields.1.unit_price",
        "price each choice instead",
    ),
    (
        "choices on a number field",
        lambda d: field(d, 0, 0).update(choices=[{"id": "a", "title": "A"}]),
        "categories.0.fields.0.choices",
        "a number field takes no choices",
    ),
    (
        "quantity from a missing field",
        lambda d: field(d, 0, 1).update(quantity_from="guests"),
        "categories.0.fields.1.quantity_from",
        "no field 'guests' in this category",
    ),
    (
        "quantity from a text field",
        lambda d: field(d, 0, 1).update(quantity_from="note"),
        "categories.0.fields.1.quantity_from",
        "field 'note' is not a number field",
    ),
    (
        "quantity from without prices",
        lambda d: field(d, 0, 1)["choices"][0].pop("unit_price"),
        "categories.0.fields.1.quantity_from",
        "none of the choices has a unit_price",
    ),
    (
        "quantity that can be negative",
        lambda d: field(d, 0, 0).update(min=-3),
        "categories.0.fields.0.min",
        "must be 0 or more, as the field counts items",
    ),
    (
        "fraction on a whole-number field",
        lambda d: field(d, 0, 0).update(max=2.5),
        "categories.0.fields.0.max",
        "must be a whole number",
    ),
    (
        "fulfilment with both",
        lambda d: d["categories"][0]["fulfilment"].update(users=[ALICE]),
        "categories.0.fulfilment",
        "give either users",
    ),
    (
        "fulfilment with neither",
        lambda d: d["categories"][0].update(fulfilment={}),
        "categories.0.fulfilment",
        "give either users",
    ),
    (
        "fulfilment user that is no id",
        lambda d: d["categories"][0].update(fulfilment={"users": ["Alice"]}),
        "categories.0.fulfilment.users.0",
        "'Alice' is not a user id",
    ),
    (
        "fulfilment channel with spaces",
        lambda d: d["categories"][0].update(fulfilment={"channel": "Catering orders"}),
        "categories.0.fulfilment.channel",
        "'Catering orders' is not a Teams channel id (like 19:...@thread.tacv2, no spaces)",
    ),
    (
        "lower-case currency",
        setting(currency="eur"),
        "currency",
        "'eur' is not a currency: use an ISO 4217 code such as EUR",
    ),
    (
        "id with spaces",
        lambda d: field(d, 0, 2).update(id="Special note"),
        "categories.0.fields.2.id",
        "'Special note' is not an id: use up to 64 lower-case letters, digits, - and _",
    ),
    (
        "unknown key",
        lambda d: field(d, 1, 0).update(colour="red"),
        "categories.1.fields.0.colour",
        "Extra inputs are not permitted",
    ),
    (
        "missing label",
        lambda d: field(d, 0, 2).pop("label"),
        "categories.0.fields.2.label",
        "Field required",
    ),
    (
        "no categories",
        setting(categories=[]),
        "categories",
        "at least 1 item",
    ),
    (
        "room owners without a booking",
        lambda d: d["categories"][1].update(policy="owners", booking="none"),
        "categories.1.booking",
        "stage 'owners' of policy 'owners' asks the room owners",
    ),
]


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [pytest.param(change, where, words, id=name) for name, change, where, words in BROKEN],
)
def test_a_broken_catalogue_is_explained_by_path(
    tmp_path: Path, change: Change, where: str, words: str
) -> None:
    book = policies_file(tmp_path)
    document = catalogue_document()
    change(document)
    path = write(tmp_path / "services.yaml", yaml.safe_dump(document))

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, book)

    message = str(caught.value)
    assert message.startswith(f"CATALOGUE_FILE {path}: ")
    assert f"{where}: " in message
    assert words in message


def test_the_unbroken_base_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "services.yaml", yaml.safe_dump(catalogue_document()))

    catalogue = load_catalogue(path, policies_file(tmp_path))

    assert [category.id for category in catalogue.categories] == ["catering", "av"]


def test_every_fault_is_listed_at_once(tmp_path: Path) -> None:
    document = catalogue_document()
    field(document, 0, 2).update(unit_price=3)
    document["categories"][1].update(policy="gold")
    path = write(tmp_path / "services.yaml", yaml.safe_dump(document))

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, policies_file(tmp_path))

    assert "categories.0.fields.2.unit_price: " in str(caught.value)
    assert "categories.1.policy: " in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("categories: [", "not valid YAML"),
        ("", "the file is empty"),
        ("- just a list", "file: Input should be a valid dictionary"),
    ],
)
def test_an_unreadable_catalogue_is_explained(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path / "services.yaml", text)

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, policies_file(tmp_path))

    assert str(caught.value).startswith(f"CATALOGUE_FILE {path}: ")
    assert words in str(caught.value)


def test_a_missing_catalogue_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read it"):
        load_catalogue(tmp_path / "nowhere.yaml", policies_file(tmp_path))


def test_a_yaml_boolean_where_an_id_belongs_is_explained(tmp_path: Path) -> None:
    text = yaml.safe_dump(catalogue_document()).replace("id: note", "id: on")
    path = write(tmp_path / "services.yaml", text)

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, policies_file(tmp_path))

    assert "categories.0.fields.2.id: Input should be a valid string" in str(caught.value)


def test_a_policy_condition_on_an_unknown_category_names_the_policies_file(
    tmp_path: Path,
) -> None:
    policies_path = write(
        tmp_path / "policies.yaml",
        f"""
policies:
  - id: standard
    name: Standard
    fallback_channel: "{CHANNEL}"
    stages:
      - {{id: manager, name: Line manager, approvers: [manager]}}
      - {{id: finance, name: Finance, approvers: [manager], when: {{category_in: [catering, av]}}}}
      - {{id: it, name: IT, approvers: [manager], when: {{category_in: [catering, it]}}}}
""",
    )
    path = write(tmp_path / "services.yaml", yaml.safe_dump(catalogue_document()))

    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, load_policies(policies_path))

    assert str(caught.value) == (
        f"POLICIES_FILE {policies_path}: policies.0.stages.2.when.category_in.1: "
        f"unknown category 'it' (the catalogue {path} has: av, catering)"
    )


# --- Submitted forms ----------------------------------------------------------------------------

CATERING_FORM = {
    "people": "12",
    "lunch": "hot-buffet",
    "drinks": "coffee-tea,water",
    "pastries": "2",
    "serve-at": "12:30",
    "dietary": "  Two vegan, one nut allergy ",
    "verb": "service.submit",
}


def test_a_catering_order_becomes_priced_items_and_details(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(demo_catalogue.category("catering"), CATERING_FORM)

    assert form.category_id == "catering"
    assert form.currency == "EUR"
    assert [(i.id, i.description, i.quantity, i.unit_price, i.total) for i in form.items] == [
        ("lunch.hot-buffet", "Lunch: Hot buffet", Decimal(12), Decimal("16.50"), Decimal("198.00")),
        (
            "drinks.coffee-tea",
            "Drinks: Coffee and tea",
            Decimal(12),
            Decimal("2.80"),
            Decimal("33.60"),
        ),
        ("pastries", "Pastry platters (serve 8)", Decimal(2), Decimal("24.00"), Decimal("48.00")),
    ]
    assert form.total == Decimal("279.60")
    assert form.details == (
        RequestDetail("people", "Number of people", "12"),
        RequestDetail("drinks", "Drinks", "Still and sparkling water"),
        RequestDetail("serve-at", "Serve at", "12:30"),
        RequestDetail("dietary", "Dietary requirements", "Two vegan, one nut allergy"),
    )


def test_native_values_work_like_card_strings(demo_catalogue: Catalogue) -> None:
    category = demo_catalogue.category("catering")
    native = {
        "people": 12,
        "lunch": "hot-buffet",
        "drinks": ["coffee-tea", "water", "coffee-tea"],
        "pastries": 2.0,
        "serve-at": time(12, 30, 15),
        "dietary": "Two vegan, one nut allergy",
    }

    assert parse_request_form(category, native) == parse_request_form(category, CATERING_FORM)


def test_nothing_ordered_at_zero(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(
        demo_catalogue.category("catering"), {"people": "4", "pastries": "0", "serve-at": "08:00"}
    )

    assert form.items == (RequestItem(WHOLE_REQUEST_ITEM_ID, "Catering", Decimal(1), Decimal(0)),)
    assert form.total == Decimal("0.00")


def test_half_hours_of_a_technician_are_priced(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(
        demo_catalogue.category("av-support"),
        {"equipment": "projector,microphones,clicker", "technician-hours": "1.5", "record": "true"},
    )

    assert [(item.id, item.total) for item in form.items] == [
        ("equipment.projector", Decimal("45.00")),
        ("equipment.microphones", Decimal("30.00")),
        ("technician-hours", Decimal("97.50")),
    ]
    assert form.total == Decimal("172.50")
    assert form.details == (
        RequestDetail("equipment", "Equipment", "Presentation clicker"),
        RequestDetail("record", "Record the meeting", "Yes"),
    )


def test_a_free_item_is_still_an_item_to_approve(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(
        demo_catalogue.category("it"),
        {"guest-wifi": "3", "needed-from": "2026-11-24", "who-for": "Fabrikam auditors"},
    )

    assert [(item.id, item.quantity, item.total) for item in form.items] == [
        ("guest-wifi", Decimal(3), Decimal("0.00"))
    ]
    assert RequestDetail("needed-from", "Needed from", "2026-11-24") in form.details


def test_a_request_with_nothing_priced_is_one_item(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(
        demo_catalogue.category("facilities"),
        {"need": "repair", "where": "Harbour House, floor 2, Compass", "urgent": "false"},
    )

    assert form.items == (RequestItem(WHOLE_REQUEST_ITEM_ID, "Facilities", Decimal(1), Decimal(0)),)
    assert form.details == (
        RequestDetail("need", "What do you need?", "Something repaired"),
        RequestDetail("where", "Where?", "Harbour House, floor 2, Compass"),
    )


def test_a_single_priced_choice_is_ordered_once(demo_catalogue: Catalogue) -> None:
    form = parse_request_form(
        demo_catalogue.category("room-layout"),
        {"layout": "theatre", "extra-chairs": "10", "ready-by": "08:30", "lectern": True},
    )

    assert [(item.id, item.quantity, item.total) for item in form.items] == [
        ("layout.theatre", Decimal(1), Decimal("60.00")),
        ("extra-chairs", Decimal(10), Decimal("20.00")),
    ]
    assert form.total == Decimal("80.00")


# Every mistake: (category, inputs on top of a valid form, field, message).
VALID = {
    "catering": {"people": "12", "serve-at": "12:30"},
    "it": {"needed-from": "2026-11-24", "who-for": "Fabrikam auditors"},
    "facilities": {"need": "repair", "where": "Compass"},
    "av-support": {},
}

MISTAKES = [
    ("catering", {"people": ""}, "people", "Number of people is required."),
    ("catering", {"people": None}, "people", "Number of people is required."),
    ("catering", {"serve-at": "   "}, "serve-at", "Serve at is required."),
    ("catering", {"people": "500"}, "people", "Number of people must be between 1 and 120."),
    ("catering", {"people": "0"}, "people", "Number of people must be between 1 and 120."),
    ("catering", {"people": "twelve"}, "people", "Number of people must be a number."),
    ("catering", {"people": "NaN"}, "people", "Number of people must be a number."),
    ("catering", {"people": True}, "people", "Number of people must be a number."),
    ("catering", {"people": "12.5"}, "people", "Number of people must be a whole number."),
    ("catering", {"people": "1e12"}, "people", "Number of people is too large."),
    ("catering", {"lunch": "caviar"}, "lunch", "Lunch: 'caviar' is not one of the choices."),
    (
        "catering",
        {"lunch": "salads,sandwiches"},
        "lunch",
        "Choose only one option for Lunch.",
    ),
    (
        "catering",
        {"drinks": "coffee-tea,gin"},
        "drinks",
        "Drinks: 'gin' is not one of the choices.",
    ),
    ("catering", {"drinks": 3}, "drinks", "Drinks: choose from the list."),
    ("catering", {"serve-at": "25:00"}, "serve-at", "Serve at must be a time like 09:30."),
    ("catering", {"serve-at": "noon"}, "serve-at", "Serve at must be a time like 09:30."),
    ("catering", {"serve-at": "9:30"}, "serve-at", "Serve at must be a time like 09:30."),
    (
        "catering",
        {"dietary": "x" * 501},
        "dietary",
        "Dietary requirements can be at most 500 characters long (it has 501).",
    ),
    ("catering", {"dietary": 42}, "dietary", "Dietary requirements must be text."),
    (
        "it",
        {"needed-from": "24/11/2026"},
        "needed-from",
        "Needed from must be a date like 2026-11-24.",
    ),
    (
        "it",
        {"needed-from": "2026-02-30"},
        "needed-from",
        "Needed from must be a date like 2026-11-24.",
    ),
    (
        "it",
        {"needed-from": "20261124"},
        "needed-from",
        "Needed from must be a date like 2026-11-24.",
    ),
    ("it", {"loan-laptops": "-1"}, "loan-laptops", "Loan laptops must be between 0 and 10."),
    ("facilities", {"need": ""}, "need", "What do you need? is required."),
    ("facilities", {"need": ","}, "need", "What do you need? is required."),
    (
        "facilities",
        {"urgent": "maybe"},
        "urgent",
        "Urgent (a safety or access problem) must be on or off.",
    ),
    (
        "av-support",
        {"technician-hours": "11"},
        "technician-hours",
        "Technician on site (hours) must be between 0 and 10.",
    ),
]


@pytest.mark.parametrize(("category_id", "inputs", "field_id", "message"), MISTAKES)
def test_each_form_mistake_names_the_field(
    demo_catalogue: Catalogue,
    category_id: str,
    inputs: dict[str, Any],
    field_id: str,
    message: str,
) -> None:
    category = demo_catalogue.category(category_id)

    with pytest.raises(FormError) as caught:
        parse_request_form(category, VALID[category_id] | inputs)

    assert caught.value.field == field_id
    assert caught.value.message == message
    assert isinstance(caught.value, InputError)


def test_a_priced_choice_needs_its_quantity(demo_catalogue: Catalogue) -> None:
    category = demo_catalogue.category("catering")

    with pytest.raises(FormError) as caught:
        parse_request_form(category, {"lunch": "salads", "serve-at": "12:00", "people": "0"})

    assert caught.value.field == "people"


def test_a_priced_choice_without_its_quantity_is_explained() -> None:
    category = ServiceCategory(
        id="catering",
        name="Catering",
        description="Food.",
        currency="EUR",
        fields=(
            NumberField(id="people", label="People", min=Decimal(1)),
            ChoiceField(
                id="lunch",
                label="Lunch",
                quantity_from="people",
                choices=(Choice("salads", "Salads", Decimal("11.00")),),
            ),
        ),
        fulfilment=FulfilmentChannel(CHANNEL),
        policy_id="standard",
    )

    with pytest.raises(FormError) as caught:
        parse_request_form(category, {"lunch": "salads"})

    assert (caught.value.field, caught.value.message) == (
        "people",
        "People must be more than 0 to order Lunch.",
    )


@pytest.mark.parametrize(
    ("low", "high", "value", "message"),
    [
        (Decimal(2), None, "1", "Guests must be at least 2."),
        (None, Decimal(9), "10", "Guests must be at most 9."),
    ],
)
def test_one_sided_ranges_read_naturally(
    low: Decimal | None, high: Decimal | None, value: str, message: str
) -> None:
    category = one_field_category(NumberField(id="guests", label="Guests", min=low, max=high))

    with pytest.raises(FormError, match=message):
        parse_request_form(category, {"guests": value})


def test_a_required_toggle_must_be_ticked() -> None:
    category = one_field_category(
        ToggleField(id="tidy", label="I will leave the room tidy", required=True)
    )

    with pytest.raises(FormError) as caught:
        parse_request_form(category, {"tidy": "false"})

    assert caught.value.message == 'Please tick "I will leave the room tidy".'
    assert parse_request_form(category, {"tidy": "true"}).details == (
        RequestDetail("tidy", "I will leave the room tidy", "Yes"),
    )


def test_dates_and_times_are_kept_in_iso_form() -> None:
    category = ServiceCategory(
        id="visit",
        name="Visit",
        description="A visit.",
        currency="EUR",
        fields=(DateField(id="on", label="On"), TimeField(id="at", label="At")),
        fulfilment=FulfilmentChannel(CHANNEL),
        policy_id="standard",
    )

    form = parse_request_form(category, {"on": date(2026, 11, 24), "at": "09:05:30"})

    assert form.details == (
        RequestDetail("on", "On", "2026-11-24"),
        RequestDetail("at", "At", "09:05"),
    )


def one_field_category(only: Any) -> ServiceCategory:
    return ServiceCategory(
        id="misc",
        name="Miscellaneous",
        description="Anything else.",
        currency="EUR",
        fields=(only,),
        fulfilment=FulfilmentChannel(CHANNEL),
        policy_id="standard",
    )
