"""Work done after answering Teams: started now, awaited at shutdown, failures logged.

Teams gives up on a turn after about 15 seconds, so notifications and card updates run here,
after the user has their answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.booking import no_checkpoint
from bot.models import Actor, Place
from bot.storage.jobs import RESULT, Job, JobRepository, job_key

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """A set of running tasks; `drain` waits for them (and for tasks they start)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task %s failed", name)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until no task runs; at `timeout` seconds the rest are cancelled."""
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        except TimeoutError:
            logger.warning("cancelling %d background tasks still running", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()


# -- slow card clicks -------------------------------------------------------------------------
Card = dict[str, Any]
RunClick = Callable[[str, Mapping[str, Any], Actor], Awaitable[Card]]
WorkingCard = Callable[[str, Mapping[str, Any], Actor], Awaitable[Card]]
FailedCard = Callable[[str, Mapping[str, Any], Actor, BaseException], Awaitable[Card]]
Checkpoint = Callable[[str], None]

MAX_JOB_ATTEMPTS = 5
"""How often an abandoned job is taken up again before it is given up (and logged)."""


class CardUpdater(Protocol):
    """What a slow click needs of the Bot Connector (bot.notifications.Messenger has it)."""

    async def send(
        self, reference: Mapping[str, Any], card: Card, *, tenant_id: str
    ) -> str | None: ...

    async def update(
        self, reference: Mapping[str, Any], activity_id: str, card: Card, *, tenant_id: str
    ) -> None: ...


def actor_to_dict(actor: Actor) -> dict[str, Any]:
    """Who clicked and where, as JSON, to finish their click in another process."""
    place = actor.place
    return {
        "tenant_id": actor.tenant_id,
        "user_id": actor.user_id,
        "name": actor.name,
        "time_zone": actor.time_zone.key,
        "channel_user_id": actor.channel_user_id,
        "channel_id": actor.channel_id,
        "place": None if place is None else dataclasses.asdict(place),
    }


def actor_from_dict(raw: Mapping[str, Any]) -> Actor:
    place = raw.get("place")
    try:
        zone = ZoneInfo(str(raw.get("time_zone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return Actor(
        tenant_id=str(raw["tenant_id"]),
        user_id=str(raw["user_id"]),
        name=str(raw.get("name") or ""),
        time_zone=zone,
        channel_user_id=str(raw.get("channel_user_id") or ""),
        channel_id=str(raw.get("channel_id") or "msteams"),
        place=Place(**place) if isinstance(place, dict) else None,
    )


@dataclass
class _Click:
    """One click being worked on in this process, which every delivery of it joins."""

    future: asyncio.Future[Card]
    late: bool = False
    """The turn answered "working on it": the result goes to the user's message."""
    answered: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set once the working card was handed to Teams (the update must come after it)."""


class SlowClicks:
    """Card clicks whose work may outlast Teams' patience, answered within a turn budget.

    The work runs as a background task, never cancelled by the answer. The turn waits for it up
    to `budget` seconds: done, the answer is its card; not done, the answer is a "working on it"
    card and, when the work ends, the card the user clicked is updated with the result. The same
    click delivered again meanwhile joins the running work (it is answered "working on it" again,
    never worked twice). Verbs in `durable` are recorded in the database first (`JobRepository`),
    so that a crash leaves a job that a running process finishes (`recover`).
    """

    def __init__(
        self,
        *,
        tasks: BackgroundTasks,
        budget: float,
        run: RunClick,
        working: WorkingCard,
        failed: FailedCard,
        budgeted: frozenset[str],
        durable: frozenset[str],
        jobs: JobRepository | None = None,
        messenger: CardUpdater | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._tasks = tasks
        self.budget = budget
        self._run = run
        self._working = working
        self._failed = failed
        self._budgeted = budgeted | durable
        self._durable = durable
        self._jobs = jobs
        self._messenger = messenger
        self._checkpoint = checkpoint
        self._clicks: dict[str, _Click] = {}

    def handles(self, verb: str) -> bool:
        return verb in self._budgeted

    async def answer(self, verb: str, data: Mapping[str, Any], actor: Actor) -> Card:
        """The click's card if its work ends within the budget, else a "working on it" card."""
        key = job_key(actor.tenant_id, actor.user_id, verb, data)
        click = self._clicks.get(key)
        if click is None:
            click = self._clicks[key] = _Click(asyncio.get_running_loop().create_future())
            self._tasks.spawn(self._work(key, click, verb, data, actor), name=f"click {verb}")
        try:
            async with asyncio.timeout(self.budget):
                await asyncio.shield(click.future)
        except TimeoutError:
            pass
        if click.future.done():
            return click.future.result()
        click.late = True  # decided before the work can end: it sees this and updates the card
        card = await self._working(verb, data, actor)
        click.answered.set()
        return card

    async def _work(
        self, key: str, click: _Click, verb: str, data: Mapping[str, Any], actor: Actor
    ) -> None:
        try:
            job: Job | None = None
            if verb in self._durable and self._jobs is not None:
                job = await self._jobs.start(key, verb, data, actor_to_dict(actor))
                if job is None:  # another process works this click: it updates the card
                    click.future.set_result(await self._working(verb, data, actor))
                    return
            try:
                async with self._lease(job):
                    card = await self._run(verb, data, actor)
            except asyncio.CancelledError:
                raise  # shutting down: the job stays for the next process
            except Exception as error:
                job = await self._done_in_turn(click, job)
                if not click.late:
                    click.future.set_exception(error)  # the turn answers it (400, sign-in, ...)
                    return
                logger.warning("slow click %s failed: %s", verb, type(error).__name__)
                card = await self._failed(verb, data, actor, error)
            job = await self._done_in_turn(click, job)
            late = click.late
            click.future.set_result(card)
            if not late:
                return
            await click.answered.wait()
            await self._deliver(job, actor, card)
        finally:
            if not click.future.done():
                click.future.cancel()
            if self._clicks.get(key) is click:
                del self._clicks[key]

    async def _done_in_turn(self, click: _Click, job: Job | None) -> Job | None:
        """While the turn still waits, its answer will carry the result: the job goes first, so
        nothing of it outlives the answer. (Should the budget run out meanwhile, the card is
        still updated, only without the outbox row.)"""
        if job is None or click.late:
            return job
        await self._jobs_finish(job)
        return None

    async def _deliver(self, job: Job | None, actor: Actor, card: Card) -> None:
        """Put the result on the user's card; a job keeps it until that worked."""
        if job is not None:
            assert self._jobs is not None
            await self._jobs.store_result(job.id, card)
            self._checkpoint("after_commit")
        if await self._update(actor, card) and job is not None:
            await self._jobs_finish(job)

    async def _jobs_finish(self, job: Job) -> None:
        assert self._jobs is not None
        await self._jobs.finish(job.id)

    async def _update(self, actor: Actor, card: Card) -> bool:
        """Replace the clicked card (a new message when the click named none); False: failed."""
        place = actor.place
        if self._messenger is None or place is None:
            logger.warning("a slow click's result has nowhere to go (no messenger or place)")
            return True
        try:
            reference = json.loads(place.reference)
            if place.message_id:
                await self._messenger.update(
                    reference, place.message_id, card, tenant_id=actor.tenant_id
                )
            else:
                await self._messenger.send(reference, card, tenant_id=actor.tenant_id)
        except Exception as error:  # the connector failed: the job stays, to be tried again
            logger.warning("could not update the card of a slow click: %s", error)
            return False
        return True

    @contextlib.asynccontextmanager
    async def _lease(self, job: Job | None) -> AsyncIterator[None]:
        """Renew the job's lease while the work runs, so no other process takes it over."""
        if job is None or self._jobs is None:
            yield
            return
        jobs = self._jobs

        async def renew() -> None:
            while True:
                await asyncio.sleep(jobs.lease.total_seconds() / 3)
                if not await jobs.renew(job.id):
                    logger.warning("lost the lease of job %s", job.id)
                    return

        renewing = asyncio.get_running_loop().create_task(renew(), name=f"lease {job.id}")
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewing

    # -- recovery --------------------------------------------------------------------------
    async def recover(self) -> int:
        """Finish the jobs of processes that died (their lease ran out); how many were taken."""
        if self._jobs is None:
            return 0
        jobs = await self._jobs.abandoned()
        for job in jobs:
            if job.attempts > MAX_JOB_ATTEMPTS:
                logger.error(
                    "giving up job %s (%s) after %d attempts", job.id, job.verb, job.attempts
                )
                await self._jobs_finish(job)
                continue
            logger.info("finishing job %s (%s) left by another process", job.id, job.verb)
            self._tasks.spawn(self._resume(job), name=f"resume {job.verb}")
        return len(jobs)

    async def _resume(self, job: Job) -> None:
        actor = actor_from_dict(job.actor)
        if job.state == RESULT and job.card is not None:
            if await self._update(actor, job.card):
                await self._jobs_finish(job)
            return
        click = self._clicks.setdefault(job.key, _Click(asyncio.get_running_loop().create_future()))
        click.late = True
        click.answered.set()
        try:
            try:
                async with self._lease(job):
                    card = await self._run(job.verb, job.data, actor)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("resumed job %s failed: %s", job.id, type(error).__name__)
                card = await self._failed(job.verb, job.data, actor, error)
            if not click.future.done():
                click.future.set_result(card)
            await self._deliver(job, actor, card)
        finally:
            if not click.future.done():
                click.future.cancel()
            if self._clicks.get(job.key) is click:
                del self._clicks[job.key]

    async def recover_forever(self) -> None:
        """At start-up and then once per lease: finish what dead processes left."""
        if self._jobs is None:
            return
        while True:
            try:
                await self.recover()
            except Exception:
                logger.exception("recovering booking jobs failed")
            await asyncio.sleep(self._jobs.lease.total_seconds())
