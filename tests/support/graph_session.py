"""Microsoft 365 for tests that run the app in graph mode: a fake Microsoft Graph with a tenant
(the demo one unless told otherwise) and a fake Bot Framework token service with the app's OAuth
connection, Megan signed in through it unless told not to be.

Rooms answer meeting invitations only when the test calls `graph.settle()`; every Graph request
is checked against the v1.0 metadata when the block ends (`assert_contract`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from tests.support.activities import MEGAN
from tests.support.fake_graph import FakeGraph, FakeTenant, FakeUser, StoredEvent
from tests.support.fake_token_service import FakeTokenService
from tests.support.graph_contract import metadata_available
from tests.support.prereq import require

CONNECTION = "graph"
TOKEN_EXCHANGE_URI = "api://frontdesk.contoso.example/botid-00000000-0000-0000-0000-000000000001"
MEGAN_TOKEN = "token-megan"  # the delegated token of FakeTenant.demo()'s Megan
MEGAN_MAILBOX_PREFIX = "meganb@"  # how her mail address starts in the demo tenant


class Microsoft365(NamedTuple):
    """The fake Graph and the fake token service the app is pointed at."""

    graph: FakeGraph
    tokens: FakeTokenService

    def settings(self) -> dict[str, str]:
        """The app's settings, by their environment names, for DIRECTORY=graph on these fakes."""
        return {
            "DIRECTORY": "graph",
            "GRAPH_BASE_URL": self.graph.base_url,
            "BOT_OAUTH_URL": self.tokens.base_url,
            "OAUTH_CONNECTION_NAME": CONNECTION,
        }

    def sign_in(self, user_id: str = MEGAN.id, token: str = MEGAN_TOKEN) -> None:
        """Store a token as if the Teams user `user_id` had completed sign-in."""
        self.tokens.sign_in(user_id, CONNECTION, token)


@asynccontextmanager
async def microsoft365(
    tenant: FakeTenant | None = None,
    *,
    signed_in: bool = True,
    token_exchange_uri: str | None = TOKEN_EXCHANGE_URI,
) -> AsyncIterator[Microsoft365]:
    """The fakes running on 127.0.0.1 (the Graph metadata required); Megan signed in if asked."""
    require(metadata_available(), "Graph v1.0 metadata is missing under ../shared/schemas")
    async with FakeGraph(tenant or FakeTenant.demo()) as graph, FakeTokenService() as tokens:
        tokens.add_connection(CONNECTION, token_exchange_uri=token_exchange_uri)
        graph.room_response_delay = None  # rooms answer when the test says so
        m365 = Microsoft365(graph, tokens)
        if signed_in:
            m365.sign_in()
        yield m365
        graph.assert_contract()


def megan(graph: FakeGraph) -> FakeUser:
    """Megan, as the demo tenant knows her."""
    [user] = [u for u in graph.tenant.users.values() if u.mail.startswith(MEGAN_MAILBOX_PREFIX)]
    return user


def megan_mailbox(graph: FakeGraph) -> str:
    """Megan's mailbox in the demo tenant."""
    return megan(graph).mail


def megan_events(graph: FakeGraph) -> list[StoredEvent]:
    """The events in Megan's calendar."""
    return graph.calendar(megan_mailbox(graph))
