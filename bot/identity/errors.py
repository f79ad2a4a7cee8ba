"""Identity errors: why a token could not be had. Messages suit an admin; none holds a token."""

from __future__ import annotations

from bot.errors import FrontdeskError


class IdentityError(FrontdeskError):
    """A token could not be had; `code` is a short error code (OAuth error or AADSTS number)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SignInRequired(IdentityError):
    """The token service holds no token for this user and OAuth connection: ask them to sign in."""

    def __init__(self, connection_name: str) -> None:
        super().__init__(f"the user is not signed in to the OAuth connection {connection_name!r}")
        self.connection_name = connection_name


class ConsentRequired(IdentityError):
    """Entra ID answered AADSTS65001: an admin has to consent to the app's permissions."""

    def __init__(self, admin_consent_url: str) -> None:
        super().__init__(
            "the app's delegated permissions have not been consented to (AADSTS65001); "
            f"an admin can grant them at {admin_consent_url}",
            code="AADSTS65001",
        )
        self.admin_consent_url = admin_consent_url


class AssertionExpired(IdentityError):
    """Entra ID answered AADSTS500133: the user's token expired; get a fresh one and retry."""

    def __init__(self) -> None:
        super().__init__(
            "the user's token is no longer valid (AADSTS500133); a fresh sign-in token is needed",
            code="AADSTS500133",
        )


class TokenServiceError(IdentityError):
    """The Bot Framework token service failed; `status` is its HTTP status (None: no answer)."""

    def __init__(self, status: int | None, *, operation: str, code: str | None = None) -> None:
        if status is None:
            message = f"the Bot Framework token service did not answer {operation}"
        else:
            message = f"the Bot Framework token service answered {operation} with HTTP {status}"
        if code:
            message += f" ({code})"
        super().__init__(message, code=code)
        self.status = status
        self.operation = operation
