"""A service request's plain data: line items priced in the catalogue's currency, and details."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# Money is kept to the cent; prices in the catalogue have at most two decimal places.
CENT = Decimal("0.01")

# The item that stands for the whole request when its form has nothing priced.
WHOLE_REQUEST_ITEM_ID = "_request"


def money(amount: Decimal) -> Decimal:
    """The amount rounded to the cent, halves away from zero."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class RequestItem:
    """One line approvers decide on: `id` is the field id, or `field.choice` for a choice."""

    id: str
    description: str
    quantity: Decimal
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return money(self.quantity * self.unit_price)


@dataclass(frozen=True)
class RequestDetail:
    """An unpriced answer on the form, as text: ISO dates, HH:MM times, choice titles, Yes."""

    field_id: str
    label: str
    value: str


@dataclass(frozen=True)
class RequestForm:
    """A validated service form: the items to approve and the details for the fulfilment team."""

    category_id: str
    currency: str
    items: tuple[RequestItem, ...]
    details: tuple[RequestDetail, ...]

    @property
    def total(self) -> Decimal:
        return money(sum((item.total for item in self.items), Decimal(0)))
