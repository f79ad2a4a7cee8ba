"""Per-user msal token caches in the database (the TokenCacheStore of graph mode)."""

from __future__ import annotations

from sqlalchemy import Engine

from bot.storage.repository import TokenCacheRepository
from tests.conftest import FakeClock


async def test_caches_are_saved_replaced_and_deleted_per_user(
    engine: Engine, clock: FakeClock
) -> None:
    store = TokenCacheRepository(engine, clock)

    assert await store.load("t:alice") is None
    await store.save("t:alice", '{"AccessToken": {}}')
    await store.save("t:bob", '{"bob": 1}')
    await store.save("t:alice", '{"AccessToken": {"x": 1}}')

    assert await store.load("t:alice") == '{"AccessToken": {"x": 1}}'
    await store.delete("t:alice")
    assert await store.load("t:alice") is None
    assert await store.load("t:bob") == '{"bob": 1}'
    await store.delete("t:nobody")  # nothing to delete is fine
