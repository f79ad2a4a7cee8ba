"""The service catalogue: what employees can ask for, the form of each category, and its prices.

The catalogue file (CATALOGUE_FILE) is edited by admins; `load_catalogue` validates it against
the policies file and explains each fault by path. `parse_request_form` checks what a user
submitted on a category's form and turns it into priced line items and unpriced details.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bot.approvals import policy as policies
from bot.approvals.errors import FormError
from bot.approvals.files import (
    ChannelId,
    Currency,
    Identifier,
    Problem,
    file_error,
    read_yaml,
    validate_document,
)
from bot.approvals.models import (
    WHOLE_REQUEST_ITEM_ID,
    RequestDetail,
    RequestForm,
    RequestItem,
    money,
)

SETTING = "CATALOGUE_FILE"


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    DATE = "date"
    TIME = "time"
    TOGGLE = "toggle"


class BookingLink(StrEnum):
    """Whether a request of the category is tied to one of the requester's room bookings."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


# --- The catalogue as the bot uses it -----------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """An option of a choice field; with a unit price, choosing it orders something."""

    id: str
    title: str
    unit_price: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class FieldBase:
    id: str
    label: str
    required: bool = False
    help: str | None = None


@dataclass(frozen=True, kw_only=True)
class TextField(FieldBase):
    max_length: int = 500
    multiline: bool = False


@dataclass(frozen=True, kw_only=True)
class NumberField(FieldBase):
    """A number; with a unit price, it is the quantity of an item (and never below 0)."""

    min: Decimal | None = None
    max: Decimal | None = None
    integer: bool = True
    unit_price: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class ChoiceField(FieldBase):
    """One choice, or several when `multiple`; priced choices are ordered `quantity_from` times."""

    choices: tuple[Choice, ...]
    multiple: bool = False
    quantity_from: str | None = None

    def choice(self, choice_id: str) -> Choice | None:
        return next((choice for choice in self.choices if choice.id == choice_id), None)


@dataclass(frozen=True, kw_only=True)
class DateField(FieldBase):
    pass


@dataclass(frozen=True, kw_only=True)
class TimeField(FieldBase):
    pass


@dataclass(frozen=True, kw_only=True)
class ToggleField(FieldBase):
    """On or off; a required toggle must be switched on (a confirmation)."""


FormField = TextField | NumberField | ChoiceField | DateField | TimeField | ToggleField


@dataclass(frozen=True)
class FulfilmentUsers:
    """The people who carry requests out, told one by one."""

    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class FulfilmentChannel:
    """A Teams channel (its conversation id) where requests are posted for the team."""

    channel_id: str


FulfilmentTeam = FulfilmentUsers | FulfilmentChannel


@dataclass(frozen=True)
class ServiceCategory:
    id: str
    name: str
    description: str
    currency: str
    fields: tuple[FormField, ...]
    fulfilment: FulfilmentTeam
    policy_id: str
    booking: BookingLink = BookingLink.OPTIONAL

    def form_field(self, field_id: str) -> FormField:
        """The field with that id; KeyError when there is none."""
        for form_field in self.fields:
            if form_field.id == field_id:
                return form_field
        raise KeyError(field_id)


@dataclass(frozen=True)
class Catalogue:
    currency: str
    categories: tuple[ServiceCategory, ...]

    def category(self, category_id: str) -> ServiceCategory:
        """The category with that id; KeyError when there is none."""
        for category in self.categories:
            if category.id == category_id:
                return category
        raise KeyError(category_id)


# --- The catalogue file -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Id = Identifier
_Title = Annotated[str, Field(min_length=1, max_length=120)]
_Text = Annotated[str, Field(min_length=1, max_length=500)]
_Price = Annotated[Decimal, Field(ge=0, le=1_000_000, decimal_places=2)]
_Bound = Annotated[Decimal, Field(gt=-1_000_000_000, lt=1_000_000_000)]


class _ChoiceEntry(_Strict):
    id: _Id
    title: _Title
    unit_price: _Price | None = None


class _FieldEntry(_Strict):
    id: _Id
    type: FieldType
    label: _Title
    required: bool = False
    help: _Text | None = None
    max_length: Annotated[int, Field(ge=1, le=10_000)] | None = None
    multiline: bool | None = None
    min: _Bound | None = None
    max: _Bound | None = None
    integer: bool | None = None
    unit_price: _Price | None = None
    choices: list[_ChoiceEntry] | None = None
    quantity_from: _Id | None = None


class _FulfilmentEntry(_Strict):
    users: list[Any] | None = None
    channel: ChannelId | None = None


class _CategoryEntry(_Strict):
    id: _Id
    name: _Title
    description: _Text
    policy: _Id
    booking: BookingLink = BookingLink.OPTIONAL
    fulfilment: _FulfilmentEntry
    fields: Annotated[list[_FieldEntry], Field(min_length=1)]


class CatalogueFile(_Strict):
    currency: Currency
    categories: Annotated[list[_CategoryEntry], Field(min_length=1)]


# Which of the type-specific keys each field type takes.
_KEYS_OF: Mapping[FieldType, frozenset[str]] = {
    FieldType.TEXT: frozenset({"max_length", "multiline"}),
    FieldType.NUMBER: frozenset({"min", "max", "integer", "unit_price"}),
    FieldType.CHOICE: frozenset({"choices", "quantity_from"}),
    FieldType.MULTI_CHOICE: frozenset({"choices", "quantity_from"}),
    FieldType.DATE: frozenset(),
    FieldType.TIME: frozenset(),
    FieldType.TOGGLE: frozenset(),
}
_TYPE_KEYS = frozenset().union(*_KEYS_OF.values())


def load_catalogue(path: Path, book: policies.PolicyBook) -> Catalogue:
    """Read and validate a catalogue file against the policies; CatalogueError names each fault.

    Faults in the catalogue are reported against CATALOGUE_FILE; a `category_in` in the
    policies that names no category of this catalogue is reported against POLICIES_FILE.
    """
    parsed = validate_document(CatalogueFile, read_yaml(path, SETTING), path, SETTING)
    problems: list[Problem] = []
    categories: list[ServiceCategory] = []
    for c, entry in enumerate(parsed.categories):
        where = f"categories.{c}"
        if any(entry.id == earlier.id for earlier in categories):
            problems.append((f"{where}.id", f"category id {entry.id!r} appears twice"))
        problems.extend(_policy_problems(entry, where, book))
        fields = _fields(entry, where, problems)
        fulfilment = _fulfilment(entry.fulfilment, f"{where}.fulfilment", problems)
        if fulfilment is None:
            continue
        categories.append(
            ServiceCategory(
                id=entry.id,
                name=entry.name,
                description=entry.description,
                currency=parsed.currency,
                fields=fields,
                fulfilment=fulfilment,
                policy_id=entry.policy,
                booking=entry.booking,
            )
        )
    if problems:
        raise file_error(SETTING, path, problems)
    known = {category.id for category in categories}
    unknown = [
        (where, f"unknown category {category_id!r} (the catalogue {path} has: {_list(known)})")
        for where, category_id in policies.category_references(book)
        if category_id not in known
    ]
    if unknown:
        raise file_error(policies.SETTING, book.path, unknown)
    return Catalogue(currency=parsed.currency, categories=tuple(categories))


def _list(ids: set[str] | Mapping[str, Any]) -> str:
    return ", ".join(sorted(ids)) or "none"


def _policy_problems(
    entry: _CategoryEntry, where: str, book: policies.PolicyBook
) -> Iterator[Problem]:
    policy = book.policies.get(entry.policy)
    if policy is None:
        yield (
            f"{where}.policy",
            f"unknown policy {entry.policy!r} "
            f"({policies.SETTING} {book.path} defines: {_list(book.policies)})",
        )
        return
    if entry.booking is not BookingLink.NONE:
        return
    for stage in policy.stages:
        applies = stage.when.category_in is None or entry.id in stage.when.category_in
        needs_room = any(isinstance(s, policies.RoomOwners) for s in stage.approvers)
        if applies and needs_room and not stage.skip_if_empty:
            yield (
                f"{where}.booking",
                f"stage {stage.id!r} of policy {policy.id!r} asks the room owners, but requests "
                "of this category have no booking: allow one, or mark the stage skip_if_empty",
            )


def _fields(entry: _CategoryEntry, where: str, problems: list[Problem]) -> tuple[FormField, ...]:
    by_id: dict[str, _FieldEntry] = {}
    for field in entry.fields:
        by_id.setdefault(field.id, field)
    quantity_sources = {field.quantity_from for field in entry.fields if field.quantity_from}
    fields: list[FormField] = []
    seen: set[str] = set()
    for f, field in enumerate(entry.fields):
        at = f"{where}.fields.{f}"
        if field.id in seen:
            problems.append((f"{at}.id", f"field id {field.id!r} appears twice"))
        seen.add(field.id)
        for key in sorted(field.model_fields_set & _TYPE_KEYS - _KEYS_OF[field.type]):
            priced_choices = key == "unit_price" and field.choices is not None
            hint = "; price each choice instead" if priced_choices else ""
            problems.append((f"{at}.{key}", f"a {field.type} field takes no {key}{hint}"))
        counts_items = field.unit_price is not None or field.id in quantity_sources
        problems.extend(_field_problems(field, at, by_id, counts_items=counts_items))
        fields.append(_field(field))
    return tuple(fields)


def _field_problems(
    field: _FieldEntry, at: str, by_id: Mapping[str, _FieldEntry], *, counts_items: bool
) -> Iterator[Problem]:
    if field.type is FieldType.NUMBER:
        if field.min is not None and field.max is not None and field.max < field.min:
            yield f"{at}.max", "must be >= min"
        if field.integer is not False:
            for key, bound in (("min", field.min), ("max", field.max)):
                if bound is not None and bound != bound.to_integral_value():
                    yield f"{at}.{key}", "must be a whole number (the field takes whole numbers)"
        if counts_items and field.min is not None and field.min < 0:
            yield f"{at}.min", "must be 0 or more, as the field counts items"
    if field.type in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        if not field.choices:
            yield f"{at}.choices", f"a {field.type} field needs at least one choice"
        seen: set[str] = set()
        for index, choice in enumerate(field.choices or ()):
            if choice.id in seen:
                yield f"{at}.choices.{index}.id", f"choice id {choice.id!r} appears twice"
            seen.add(choice.id)
        if field.quantity_from is not None:
            source = by_id.get(field.quantity_from)
            if source is None:
                yield f"{at}.quantity_from", f"no field {field.quantity_from!r} in this category"
            elif source.type is not FieldType.NUMBER:
                yield f"{at}.quantity_from", f"field {source.id!r} is not a number field"
            if not any(choice.unit_price is not None for choice in field.choices or ()):
                yield f"{at}.quantity_from", "none of the choices has a unit_price"


def _field(entry: _FieldEntry) -> FormField:
    common: dict[str, Any] = {
        "id": entry.id,
        "label": entry.label,
        "required": entry.required,
        "help": entry.help,
    }
    match entry.type:
        case FieldType.TEXT:
            return TextField(
                **common,
                max_length=entry.max_length or 500,
                multiline=bool(entry.multiline),
            )
        case FieldType.NUMBER:
            counts = entry.unit_price is not None
            return NumberField(
                **common,
                min=Decimal(0) if counts and entry.min is None else entry.min,
                max=entry.max,
                integer=entry.integer is not False,
                unit_price=_price(entry.unit_price),
            )
        case FieldType.CHOICE | FieldType.MULTI_CHOICE:
            return ChoiceField(
                **common,
                choices=tuple(
                    Choice(id=choice.id, title=choice.title, unit_price=_price(choice.unit_price))
                    for choice in entry.choices or ()
                ),
                multiple=entry.type is FieldType.MULTI_CHOICE,
                quantity_from=entry.quantity_from,
            )
        case FieldType.DATE:
            return DateField(**common)
        case FieldType.TIME:
            return TimeField(**common)
        case FieldType.TOGGLE:
            return ToggleField(**common)


def _price(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else money(amount)


def _fulfilment(
    entry: _FulfilmentEntry, where: str, problems: list[Problem]
) -> FulfilmentTeam | None:
    if (entry.users is None) == (entry.channel is None):
        problems.append(
            (where, "give either users (a list of user ids) or channel (a Teams channel id)")
        )
        return None
    if entry.channel is not None:
        return FulfilmentChannel(entry.channel)
    users: list[str] = []
    if not entry.users:
        problems.append((f"{where}.users", "needs at least one user"))
    for index, member in enumerate(entry.users or ()):
        user = policies.parse_user_id(member)
        if user is None:
            problems.append((f"{where}.users.{index}", policies.bad_user_message(member)))
        elif user not in users:
            users.append(user)
    return FulfilmentUsers(tuple(users))


# --- A submitted form ---------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
_LARGEST = Decimal(1_000_000_000)

Value = str | Decimal | date | time | bool | tuple[Choice, ...]


def parse_request_form(category: ServiceCategory, inputs: Mapping[str, Any]) -> RequestForm:
    """Check a submitted form and split it into priced line items and unpriced details.

    `inputs` are the card's input values (strings, as Teams sends them; native values work too).
    A priced number field with a value above 0 becomes an item of that quantity; a chosen priced
    choice becomes an item of quantity 1, or of the number in its `quantity_from` field. Every
    other answer becomes a detail. A form with nothing priced becomes one item standing for the
    whole request, at no cost, so that approvers always decide on items. Keys that are not
    fields (the card's verb, ids) are ignored. Raises FormError for the first faulty field.
    """
    values: dict[str, Value | None] = {
        field.id: _read(field, inputs.get(field.id)) for field in category.fields
    }
    items: list[RequestItem] = []
    details: list[RequestDetail] = []
    for field in category.fields:
        value = values[field.id]
        if value is None:
            continue
        match field, value:
            case NumberField(unit_price=Decimal() as price), Decimal() as quantity:
                if quantity > 0:
                    items.append(RequestItem(field.id, field.label, quantity, price))
            case ChoiceField(), tuple() as chosen:
                items.extend(_choice_items(category, field, chosen, values))
                unpriced = [choice.title for choice in chosen if choice.unit_price is None]
                if unpriced:
                    details.append(RequestDetail(field.id, field.label, ", ".join(unpriced)))
            case ToggleField(), _:
                if value is True:
                    details.append(RequestDetail(field.id, field.label, "Yes"))
            case _:
                details.append(RequestDetail(field.id, field.label, _text(value)))
    if not items:
        items.append(RequestItem(WHOLE_REQUEST_ITEM_ID, category.name, Decimal(1), Decimal(0)))
    return RequestForm(
        category_id=category.id,
        currency=category.currency,
        items=tuple(items),
        details=tuple(details),
    )


def _choice_items(
    category: ServiceCategory,
    field: ChoiceField,
    chosen: tuple[Choice, ...],
    values: Mapping[str, Value | None],
) -> Iterator[RequestItem]:
    priced = [(choice, choice.unit_price) for choice in chosen if choice.unit_price is not None]
    if not priced:
        return
    quantity = Decimal(1)
    if field.quantity_from is not None:
        source = category.form_field(field.quantity_from)
        counted = values.get(source.id)
        if not isinstance(counted, Decimal) or counted <= 0:
            raise FormError(
                source.id, f"{source.label} must be more than 0 to order {field.label}."
            )
        quantity = counted
    for choice, price in priced:
        description = f"{field.label}: {choice.title}"
        yield RequestItem(f"{field.id}.{choice.id}", description, quantity, price)


def _text(value: Value) -> str:
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _missing(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    return isinstance(raw, list | tuple) and not raw


def _read(field: FormField, raw: Any) -> Value | None:
    """The field's value, None when it is empty (and may be); FormError when it is wrong."""
    if isinstance(field, ToggleField):
        on = _toggle(field, raw)
        if field.required and not on:
            raise FormError(field.id, f'Please tick "{field.label}".')
        return on
    if _missing(raw):
        if field.required:
            raise FormError(field.id, f"{field.label} is required.")
        return None
    match field:
        case TextField():
            return _read_text(field, raw)
        case NumberField():
            return _read_number(field, raw)
        case ChoiceField():
            return _read_choices(field, raw)
        case DateField():
            return _read_date(field, raw)
        case TimeField():
            return _read_time(field, raw)


def _read_text(field: TextField, raw: Any) -> str:
    if not isinstance(raw, str):
        raise FormError(field.id, f"{field.label} must be text.")
    text = raw.strip()
    if len(text) > field.max_length:
        raise FormError(
            field.id,
            f"{field.label} can be at most {field.max_length} characters long "
            f"(it has {len(text)}).",
        )
    return text


def _read_number(field: NumberField, raw: Any) -> Decimal:
    value: Decimal | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = Decimal(raw)
    elif isinstance(raw, float):
        value = Decimal(str(raw))
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, str) and len(raw.strip()) <= 32:
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            value = None
    if value is None or not value.is_finite():
        raise FormError(field.id, f"{field.label} must be a number.")
    if abs(value) >= _LARGEST:
        raise FormError(field.id, f"{field.label} is too large.")
    if field.integer:
        if value != value.to_integral_value():
            raise FormError(field.id, f"{field.label} must be a whole number.")
        value = Decimal(int(value))
    low, high = field.min, field.max
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f"between {low} and {high}"
        elif low is not None:
            bounds = f"at least {low}"
        else:
            bounds = f"at most {high}"
        raise FormError(field.id, f"{field.label} must be {bounds}.")
    return value


def _read_choices(field: ChoiceField, raw: Any) -> tuple[Choice, ...]:
    if isinstance(raw, str):
        ids = [part.strip() for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list | tuple) and all(isinstance(part, str) for part in raw):
        ids = [part.strip() for part in raw if part.strip()]
    else:
        raise FormError(field.id, f"{field.label}: choose from the list.")
    if not field.multiple and len(ids) > 1:
        raise FormError(field.id, f"Choose only one option for {field.label}.")
    chosen: list[Choice] = []
    for choice_id in ids:
        choice = field.choice(choice_id)
        if choice is None:
            raise FormError(
                field.id, f"{field.label}: {choice_id[:40]!r} is not one of the choices."
            )
        if choice not in chosen:
            chosen.append(choice)
    if not chosen and field.required:
        raise FormError(field.id, f"{field.label} is required.")
    return tuple(chosen)


def _read_date(field: DateField, raw: Any) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and _DATE.match(raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise FormError(field.id, f"{field.label} must be a date like 2026-11-24.")


def _read_time(field: TimeField, raw: Any) -> time:
    if isinstance(raw, time):
        return raw
    if isinstance(raw, str) and _TIME.match(raw.strip()):
        try:
            return time.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise FormError(field.id, f"{field.label} must be a time like 09:30.")


def _toggle(field: ToggleField, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if _missing(raw):
        return False
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise FormError(field.id, f"{field.label} must be on or off.")
