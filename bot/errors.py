"""Domain errors. The Teams handler maps each to what the user sees; none carries secrets."""

from __future__ import annotations


class FrontdeskError(Exception):
    """Base of every error the bot explains to a user."""


class InputError(FrontdeskError):
    """The user's input cannot be used; `field` names the input to fix (None: the whole form)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MalformedAction(FrontdeskError):
    """Card data no Teams client would send (unknown verb, bad ids): statusCode 400."""


class NotFound(FrontdeskError):
    """The object a card points at does not exist, or is not the user's to see."""


class RoomTaken(FrontdeskError):
    """Someone else booked an overlapping slot of this room first."""


class RoomNeedsApproval(FrontdeskError):
    """The room can only be booked through an approval, which is not available yet."""


class NotAllowed(FrontdeskError):
    """The user may not do this to this object."""
