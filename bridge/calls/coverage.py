"""Where a call's participants were not being recorded: the spans no process held the call.

Each process holding a call keeps a span in `call_holds` from its claim to its last renewal
(`bridge/calls/leases.py`). Between a holder that died and the one that took the call over, no
one heard the call: the transcript says so there. A clean hand-over takes up to a renewal
interval; anything shorter than `MIN_GAP_MS` is not worth a line.
"""

from __future__ import annotations

from bridge.calls.leases import CallLeases, uncovered
from bridge.meetings.store import Meeting

MIN_GAP_MS = 2_000


class RecordingCoverage:
    def __init__(self, leases: CallLeases) -> None:
        self._leases = leases

    async def missing(self, meeting: Meeting) -> list[tuple[int, int]]:
        """Wall-clock spans (ms) of the recorded part of `meeting` that no one recorded."""
        if meeting.recording_started_ns is None or meeting.ended_at is None:
            return []
        start_ms = meeting.recording_started_ns // 1_000_000
        holds = await self._leases.holds(meeting.id)
        return uncovered(holds, start_ms, meeting.ended_at, MIN_GAP_MS)
