"""Working through the inbox: each stored event handled once, failures retried with back-off.

Rooms are independent, so different rooms' events are handled concurrently while each room's
events keep their order. A failing event is rescheduled (exponential back-off, then given up
and kept with its error), and the events behind it go on: one poisoned event never blocks a room.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.inbox.store import InboxItem, InboxStore
from bridge.ports import Clock

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[None]]
GiveUp = Callable[[Mapping[str, Any], Exception], Awaitable[None]]


class InboxProcessor:
    def __init__(
        self,
        store: InboxStore,
        handler: Handler,
        clock: Clock,
        *,
        max_attempts: int = 8,
        base_delay_ms: int = 1000,
        max_delay_ms: int = 5 * 60_000,
        room_concurrency: int = 16,
        idle_poll_s: float = 5.0,
        on_give_up: GiveUp | None = None,
    ) -> None:
        self._on_give_up = on_give_up
        self._store = store
        self._handler = handler
        self._clock = clock
        self._max_attempts = max_attempts
        self._base_delay_ms = base_delay_ms
        self._max_delay_ms = max_delay_ms
        self._room_slots = asyncio.Semaphore(room_concurrency)
        self._idle_poll_s = idle_poll_s
        self._wakeup = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Ask for a pass now (called after a transaction is stored)."""
        self._wakeup.set()

    def stop(self) -> None:
        """Finish the events in hand, then return from `run()` (graceful shutdown): stopping
        in the middle of one would make its retry repeat what was already done."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """Drain until stopped. Errors in one pass never stop the loop."""
        while not self._stopping:
            self._wakeup.clear()
            try:
                handled = await self.drain()
            except Exception:
                log.exception("Inbox pass failed; retrying shortly")
                handled = 0
            if handled:
                continue  # more may have arrived while we worked
            await self._sleep_until_due()

    async def drain(self) -> int:
        """One pass over every due event; returns how many were attempted."""
        items = await self._store.due(self._clock.now_ms())
        if not items:
            return 0
        if self._stopping:
            return 0
        by_room: dict[str | None, list[InboxItem]] = defaultdict(list)
        for item in items:
            by_room[item.room_id].append(item)
        await asyncio.gather(*(self._handle_room(queue) for queue in by_room.values()))
        return len(items)

    async def _handle_room(self, items: list[InboxItem]) -> None:
        async with self._room_slots:
            for item in items:
                if self._stopping:
                    return  # the rest stays pending for the next start
                await self._handle_one(item)

    async def _handle_one(self, item: InboxItem) -> None:
        try:
            await self._handler(item.event)
        except Exception as err:
            attempts = item.attempts + 1
            now = self._clock.now_ms()
            if attempts >= self._max_attempts:
                log.error(
                    "Giving up on event %s in %s after %d attempts: %r",
                    item.event_id,
                    item.room_id,
                    attempts,
                    err,
                )
                await self._store.mark_failed(item.seq, repr(err), retry_at_ms=None, now_ms=now)
                if self._on_give_up is not None:
                    try:
                        await self._on_give_up(item.event, err)
                    except Exception as hook_error:
                        log.warning(
                            "Could not report giving up on %s: %r", item.event_id, hook_error
                        )
                return
            delay = min(self._base_delay_ms * 2 ** (attempts - 1), self._max_delay_ms)
            log.warning(
                "Event %s in %s failed (attempt %d), retrying in %d ms: %r",
                item.event_id,
                item.room_id,
                attempts,
                delay,
                err,
            )
            await self._store.mark_failed(item.seq, repr(err), retry_at_ms=now + delay, now_ms=now)
            return
        await self._store.mark_done(item.seq, self._clock.now_ms())

    async def _sleep_until_due(self) -> None:
        next_retry = await self._store.next_retry_at()
        timeout = self._idle_poll_s
        if next_retry is not None:
            timeout = min(timeout, max(0.0, (next_retry - self._clock.now_ms()) / 1000))
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
        except TimeoutError:
            pass
