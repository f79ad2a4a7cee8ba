"""Identity: the Bot Framework token service and Entra ID tokens (app-only and on-behalf-of)."""

from bot.identity.errors import (
    AssertionExpired,
    ConsentRequired,
    IdentityError,
    SignInRequired,
    TokenServiceError,
)
from bot.identity.msal_tokens import AppIdentity, MemoryTokenCacheStore, TokenCacheStore
from bot.identity.token_service import (
    BotTokenService,
    SignInResource,
    UserToken,
    token_exchange_state,
)

__all__ = [
    "AppIdentity",
    "AssertionExpired",
    "BotTokenService",
    "ConsentRequired",
    "IdentityError",
    "MemoryTokenCacheStore",
    "SignInRequired",
    "SignInResource",
    "TokenCacheStore",
    "TokenServiceError",
    "UserToken",
    "token_exchange_state",
]
