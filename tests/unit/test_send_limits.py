"""The pace of proactive calls (bot.notifications.RateLimiter, SendLimits) on a controlled
clock: Teams' per-conversation windows and the per-tenant rate are never exceeded, callers
start in the order they asked and as early as the windows allow, and idle keys are forgotten."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.notifications import CONVERSATION_WINDOWS, RateLimiter, SendLimits


class Clock:
    """A clock that moves when told and by every sleep, which is recorded, not slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock, windows: tuple[tuple[int, float], ...]) -> RateLimiter:
    return RateLimiter(windows, clock=clock, sleep=clock.sleep)


def most_in_any_window(starts: list[float], seconds: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + seconds - 1e-9) for s in starts)


async def starts_of(pace: RateLimiter, clock: Clock, key: str, count: int) -> list[float]:
    """When each of `count` callers, one after another, started (from the first call)."""
    t0 = clock.now
    starts = []
    for _ in range(count):
        await pace.wait(key)
        starts.append(clock.now - t0)
    return starts


async def test_even_spacing_per_second() -> None:
    clock = Clock()
    pace = RateLimiter.per_second(5, clock=clock, sleep=clock.sleep)

    starts = await starts_of(pace, clock, "tenant", 6)

    assert starts == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert clock.slept == pytest.approx([0.2] * 5)


async def test_a_burst_to_one_conversation_keeps_every_teams_window() -> None:
    clock = Clock()
    pace = limiter(clock, CONVERSATION_WINDOWS)

    starts = await starts_of(pace, clock, "a:chat", 70)

    assert starts == sorted(starts)
    for limit, seconds in CONVERSATION_WINDOWS:
        assert most_in_any_window(starts, seconds) <= limit, (limit, seconds)
    # As early as the windows allow: 6 at once, the 7th when the first leaves the 1 s window,
    # the 8th when the 2 s window has room, then 6 more together (1 s window full again).
    assert starts[:14] == pytest.approx([0.0] * 6 + [1.0] + [2.0] * 6 + [3.0])
    # 55 in 30 s: the 56th waits for the first to leave that window.
    assert starts[55] == pytest.approx(30.0)


async def test_windows_count_real_time_too() -> None:
    clock = Clock()
    pace = limiter(clock, ((2, 1.0),))

    assert await pace.wait("k") == 0.0
    assert await pace.wait("k") == 0.0
    clock.now += 0.4
    assert await pace.wait("k") == pytest.approx(0.6)
    clock.now += 5
    assert await pace.wait("k") == 0.0


async def test_keys_do_not_share_their_pace() -> None:
    clock = Clock()
    pace = limiter(clock, ((1, 1.0),))

    assert await starts_of(pace, clock, "a", 3) == pytest.approx([0.0, 1.0, 2.0])
    assert await pace.wait("b") == 0.0


async def test_concurrent_callers_start_in_the_order_they_asked_and_spaced_as_they_started() -> (
    None
):
    pace = RateLimiter.per_second(200)
    started: list[tuple[int, float]] = []

    async def call(index: int) -> None:
        await pace.wait("tenant")
        started.append((index, time.monotonic()))
        if index == 3:
            time.sleep(0.05)  # noqa: ASYNC251 - a busy event loop, on purpose

    await asyncio.gather(*(call(index) for index in range(20)))

    assert [index for index, _ in started] == list(range(20))
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(started)]
    assert min(gaps) >= 0.005 - 0.001, gaps


async def test_send_limits_pace_a_tenant_across_its_conversations() -> None:
    clock = Clock()
    limits = SendLimits(
        per_conversation=limiter(clock, CONVERSATION_WINDOWS),
        per_tenant=RateLimiter.per_second(25, clock=clock, sleep=clock.sleep),
    )

    t0 = clock.now
    starts = []
    for i in range(50):
        await limits.wait("tenant-1", f"a:chat-{i}")
        starts.append(clock.now - t0)
    other = await limits.wait("tenant-2", "a:elsewhere")
    new_chat = await limits.wait("tenant-1", None)

    assert starts == pytest.approx([i / 25 for i in range(50)])
    assert other == 0.0
    assert new_chat == pytest.approx(0.04)


async def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    pace = limiter(clock, ((1, 10.0),))
    for index in range(1000):
        await pace.wait(f"a:chat-{index}")
        clock.now += 0.1

    assert len(pace) <= 101


def test_a_window_must_allow_something() -> None:
    with pytest.raises(ValueError, match="window"):
        RateLimiter([(0, 1.0)])
    with pytest.raises(ValueError, match="window"):
        RateLimiter([])
