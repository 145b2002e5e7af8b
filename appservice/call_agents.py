"""The bridge's participant in the calls one process holds, as the bridge and a call-worker
build it: the agent (`bridge/calls/agent.py`), its lease holder, and the loop that keeps them.

Shared by `start_features` (the bridge holding calls itself, the default) and
`visio-bridge call-worker` (`appservice/call_worker.py`), so both join, record and hand calls
over in exactly the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass

from appservice.settings import Settings
from bridge.calls.agent import CallAgent, OnMessage
from bridge.calls.holder import CallHolder
from bridge.calls.leases import CallLeases
from bridge.join.tokens import JoinSettings
from bridge.meetings.service import MeetingService
from bridge.meetings.store import Meeting, MeetingStore
from bridge.ports import CallParticipant, Clock, Database
from bridge.recording.tracks import MeetingTrackSink, TrackStore
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)


def process_owner() -> str:
    """This process's name in leases and track rows: unique among live processes."""
    return f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class CallAgents:
    agent: CallAgent
    holder: CallHolder
    tracks: TrackStore


def build_call_agents(
    settings: Settings,
    db: Database,
    clock: Clock,
    meetings: MeetingStore,
    meeting_service: MeetingService,
    room_settings: RoomSettings,
    join_settings: JoinSettings,
    participant: CallParticipant,
    on_message: OnMessage,
) -> CallAgents:
    owner = process_owner()
    tracks = TrackStore(db)
    recordings_dir = settings.transcription.recordings_dir

    def sink_for(meeting: Meeting) -> MeetingTrackSink:
        return MeetingTrackSink(
            meeting.id, meeting.livekit_room, tracks, recordings_dir, owner, clock
        )

    per_participant = settings.transcription.recorder == "participant"
    holder: CallHolder

    async def wanted(meeting: Meeting) -> bool:
        return await agent.wanted(meeting)

    holder = CallHolder(
        CallLeases(db, clock),
        meetings,
        owner,
        clock,
        lease_ms=settings.calls.lease_seconds * 1000,
        capacity=settings.calls.capacity or None,
        wanted=wanted,
    )
    agent = CallAgent(
        meetings,
        meeting_service,
        participant,
        room_settings,
        join_settings,
        rtc_url=settings.livekit.rtc_url,
        on_message=on_message,
        sink_for=sink_for if per_participant else None,
        holding=holder,
    )
    return CallAgents(agent, holder, tracks)


async def hold_calls(agents: CallAgents) -> None:
    """Forever: renew this process's leases, join the calls it gained, leave those it lost,
    and bring the calls it is in back in step (another process may have switched the
    transcript on or off). Cancelled at shutdown, which hands every call over at once."""
    holder, agent = agents.holder, agents.agent
    try:
        while True:
            try:
                change = await holder.tick()
                for meeting_id in sorted(change.gained | change.lost):
                    await agent.sync(meeting_id)
                await agent.sync_connected()
            except Exception:
                log.exception("Call holding pass failed")
            await asyncio.sleep(holder.renew_interval_ms / 1000)
    finally:
        await agent.close()
        await holder.release_all()
