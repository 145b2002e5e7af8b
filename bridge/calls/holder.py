"""One process's share of the live calls: which it holds, renewed, given up and taken over.

Each process that can be in calls (the bridge, each `visio-bridge call-worker`) has one
`CallHolder` and ticks it every `renew_interval_ms`: the tick renews the leases it holds
(`bridge/calls/leases.py`), gives up calls that ended or that nobody needs the bridge in any
more, and claims the open calls it is wanted in that nobody holds, within its capacity. The
caller joins the calls a tick reports gained and leaves those it reports lost.

Timing: with a lease of L renewed every L/3, a process that dies is replaced within L + L/3 at
worst (its lease runs out at most L after its last renewal, and another process's next tick
comes at most L/3 later): 20 s with the default 15 s lease. A clean shutdown (`release_all`)
hands its calls over at the others' next tick. A holder that cannot reach the database stops
counting a call as its own the moment its lease has run out, since another process may then
claim it: the call is reported lost rather than held twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.calls.leases import CallLeases
from bridge.ids import MeetingID
from bridge.meetings.store import Meeting, MeetingStore
from bridge.ports import Clock

log = logging.getLogger(__name__)

Wanted = Callable[[Meeting], Awaitable[bool]]

# A lease of 15 s renewed every 5 s: a dead process's calls are taken over within 15-20 s, and
# a renewal may be late by two whole intervals (a slow database, a busy event loop) before the
# lease runs out under a live holder.
DEFAULT_LEASE_MS = 15_000
RENEWALS_PER_LEASE = 3


@dataclass(frozen=True)
class HeldChange:
    """What one tick changed: calls to join (`gained`) and to leave (`lost`)."""

    gained: frozenset[MeetingID] = field(default_factory=frozenset)
    lost: frozenset[MeetingID] = field(default_factory=frozenset)


class CallHolder:
    def __init__(
        self,
        leases: CallLeases,
        meetings: MeetingStore,
        owner: str,
        clock: Clock,
        *,
        lease_ms: int = DEFAULT_LEASE_MS,
        capacity: int | None = None,
        wanted: Wanted,
    ) -> None:
        """`owner` names this process in the database: unique among the live processes (a
        host name with a process id and a random suffix), never shared by two at once.
        `capacity` is the most calls this process holds at once (None: no limit)."""
        self._leases = leases
        self._meetings = meetings
        self._owner = owner
        self._clock = clock
        self._lease_ms = lease_ms
        self._capacity = capacity
        self._wanted = wanted
        # Each held call, with the end of its lease as this process last set it.
        self._until: dict[MeetingID, int] = {}
        # Ticks, takes and give-ups change the held set between awaits: one at a time, or a
        # tick would count a call taken during its renewal as lost.
        self._lock = asyncio.Lock()

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def renew_interval_ms(self) -> int:
        """How often to tick: a few renewals per lease, so one late renewal loses nothing."""
        return self._lease_ms // RENEWALS_PER_LEASE

    def holds(self, meeting_id: MeetingID) -> bool:
        """Whether this process holds the call now (its lease has not run out)."""
        until = self._until.get(meeting_id)
        return until is not None and until >= self._clock.now_ms()

    def held(self) -> set[MeetingID]:
        now = self._clock.now_ms()
        return {meeting_id for meeting_id, until in self._until.items() if until >= now}

    async def tick(self) -> HeldChange:
        """Renew, give up and claim (see the module docstring); what changed."""
        gained: set[MeetingID] = set()
        lost: set[MeetingID] = set()
        async with self._lock:
            try:
                await self._renew(lost)
            except Exception as err:
                # The database is unreachable: keep only what is still ours for sure, claim
                # nothing, and try again at the next tick.
                log.warning("Call leases of %s not renewed: %r", self._owner, err)
                self._drop_expired(lost)
            else:
                try:
                    await self._rebalance(gained, lost)
                except Exception as err:
                    # What was given up or claimed before the failure is still reported.
                    log.warning("Calls not shared out by %s this time: %r", self._owner, err)
        return HeldChange(gained=frozenset(gained - lost), lost=frozenset(lost - gained))

    async def take(self, meeting: Meeting) -> bool:
        """Hold this call now if no other process does; True if held (already or now).

        For when a call becomes wanted between two ticks (a meeting going live). Refused, like
        a tick's claims, past this process's capacity or its share of the calls: a less busy
        process then claims it at its next tick.
        """
        async with self._lock:
            if self.holds(meeting.id):
                return True
            holders = await self._leases.holders()
            if meeting.id in holders or self._full() or self._over_share(holders, 1):
                return False
            return await self._claim(meeting.id)

    async def give_up(self, meeting_id: MeetingID) -> None:
        """Hand one call over at once (the caller has left it or is about to)."""
        async with self._lock:
            await self._release(meeting_id, "given up")

    async def release_all(self) -> HeldChange:
        """Hand every call over at once, for a clean shutdown."""
        lost: set[MeetingID] = set()
        async with self._lock:
            for meeting_id in sorted(self._until):
                try:
                    await self._release(meeting_id, "shutting down")
                except Exception as err:
                    # Its lease will run out instead.
                    log.warning("Call of meeting %s not released: %r", meeting_id, err)
                    self._until.pop(meeting_id, None)
                lost.add(meeting_id)
        return HeldChange(lost=frozenset(lost))

    async def _renew(self, lost: set[MeetingID]) -> None:
        now = self._clock.now_ms()
        renewed = set(await self._leases.renew(self._owner, self._lease_ms))
        for meeting_id in sorted(set(self._until) - renewed):
            del self._until[meeting_id]
            lost.add(meeting_id)
            log.info("Lost the call of meeting %s: its lease ran out or was taken", meeting_id)
        unknown = renewed - set(self._until)
        for meeting_id in renewed - unknown:
            self._until[meeting_id] = now + self._lease_ms
        for meeting_id in sorted(unknown):
            # Held under this process's name but not known here (a bug, or an owner name two
            # processes share): free it for whoever wants it rather than hold it unjoined.
            log.warning("Releasing the call of meeting %s, held here unknowingly", meeting_id)
            await self._leases.release(meeting_id, self._owner)

    async def _rebalance(self, gained: set[MeetingID], lost: set[MeetingID]) -> None:
        open_meetings = {meeting.id: meeting for meeting in await self._meetings.open_meetings()}
        for meeting_id in sorted(self._until):
            meeting = open_meetings.get(meeting_id)
            if meeting is None or not await self._is_wanted(meeting, unsure=True):
                await self._release(meeting_id, "ended" if meeting is None else "not wanted")
                lost.add(meeting_id)
        holders = {
            meeting_id: owner
            for meeting_id, owner in (await self._leases.holders()).items()
            if meeting_id in open_meetings
        }
        free = [
            meeting
            for meeting in sorted(open_meetings.values(), key=lambda m: (m.created_at, m.id))
            if meeting.id not in holders and await self._is_wanted(meeting, unsure=False)
        ]
        for tried, meeting in enumerate(free):
            if self._full() or self._over_share(holders, len(free) - tried):
                break
            if await self._claim(meeting.id):
                gained.add(meeting.id)

    async def _is_wanted(self, meeting: Meeting, *, unsure: bool) -> bool:
        """`wanted`, or `unsure` when it fails (e.g. the homeserver does not answer): a held
        call is kept and a free one left for this tick, rather than one meeting stopping all."""
        try:
            return await self._wanted(meeting)
        except Exception as err:
            log.warning("Meeting %s: not known whether its call is wanted: %r", meeting.id, err)
            return unsure

    def _full(self) -> bool:
        return self._capacity is not None and len(self._until) >= self._capacity

    def _over_share(self, holders: dict[MeetingID, str], free: int) -> bool:
        """Whether this process holds its even share of the calls already, `free` ones included.

        Leaves new calls to less busy processes. A process sees only those holding a call
        (and itself); while a call is free, one of those holds less than its share, so every
        wanted call still finds a holder by the next tick. An idle process is seen once it
        holds one call: the first new call after it starts goes to whoever ticks first.
        """
        elsewhere = [owner for owner in holders.values() if owner != self._owner]
        processes = len(set(elsewhere)) + 1
        calls = len(elsewhere) + len(self._until) + free
        return len(self._until) >= math.ceil(calls / processes)

    async def _claim(self, meeting_id: MeetingID) -> bool:
        now = self._clock.now_ms()
        if not await self._leases.claim(meeting_id, self._owner, self._lease_ms):
            return False
        self._until[meeting_id] = now + self._lease_ms
        log.info("Holding the call of meeting %s (%s)", meeting_id, self._owner)
        return True

    async def _release(self, meeting_id: MeetingID, why: str) -> None:
        if meeting_id not in self._until:
            return
        await self._leases.release(meeting_id, self._owner)
        del self._until[meeting_id]
        log.info("Released the call of meeting %s (%s)", meeting_id, why)

    def _drop_expired(self, lost: set[MeetingID]) -> None:
        now = self._clock.now_ms()
        for meeting_id, until in sorted(self._until.items()):
            if until < now:
                del self._until[meeting_id]
                lost.add(meeting_id)
                log.info("Lost the call of meeting %s: lease not renewed in time", meeting_id)
