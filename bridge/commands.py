"""What each `/visio` subcommand does in the room: calls the domain, then answers with a notice.

Every answer is sent with a transaction id derived from the command's event id, so handling
the same event twice (a homeserver retry, a replay from the inbox after a crash) shows the
room one answer.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from bridge.ids import EventID, RoomID, UserID
from bridge.join.links import MeetingLinks
from bridge.meetings.observers import MeetingObserver
from bridge.meetings.service import (
    MeetingService,
    NoOpenMeeting,
    NotAllowedToEnd,
    NotAllowedToStart,
)
from bridge.messages.reference import new_reference
from bridge.messages.render import Link, Notice, duration, notice
from bridge.ports import Clock, LiveKitError, Matrix, MatrixUnavailable, txn_id_for
from bridge.recording.keeper import RecordingKeeper
from bridge.room_settings.service import EffectiveConfig, RoomSettings
from bridge.status.publisher import StatusPublisher

log = logging.getLogger(__name__)

# An end by the same person this close to their `!visio end` is taken for that command's.
_SAME_END_WINDOW_MS = 60_000


class Action(enum.Enum):
    START = "start"
    END = "end"
    STATUS = "status"
    HELP = "help"
    CONFIG = "config"
    TRANSCRIPT = "transcript"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Command:
    action: Action
    argument: str = ""  # the subcommand word as typed, for "unknown command" answers
    args: tuple[str, ...] = ()  # the words after the subcommand


@dataclass(frozen=True)
class CommandContext:
    room_id: RoomID
    sender: UserID
    event_id: EventID
    config: EffectiveConfig
    sent_at_ms: int = 0  # the command's origin_server_ts

    @property
    def language(self) -> str:
        return self.config.language


class VisioCommands:
    def __init__(
        self,
        meetings: MeetingService,
        matrix: Matrix,
        *,
        settings: RoomSettings,
        clock: Clock,
        status: StatusPublisher,
        observers: MeetingObserver,
        recording: RecordingKeeper,
        links: MeetingLinks,
    ) -> None:
        self._meetings = meetings
        self._matrix = matrix
        self._settings = settings
        self._clock = clock
        self._status_message = status
        self._observers = observers
        self._recording = recording
        self._links = links

    async def run(self, ctx: CommandContext, command: Command) -> None:
        log.info("%s in %s: visio %s", ctx.sender, ctx.room_id, command.action.value)
        try:
            match command.action:
                case Action.START if not ctx.config.room.enabled:
                    await self._reply(ctx, notice(ctx.language, "disabled_here"))
                case Action.START:
                    await self._start(ctx)
                case Action.CONFIG:
                    await self._config(ctx, command.args)
                case Action.TRANSCRIPT:
                    await self._transcript(ctx, command.args)
                case Action.END:
                    await self._end(ctx)
                case Action.STATUS:
                    await self._status(ctx)
                case Action.HELP:
                    await self._reply(ctx, notice(ctx.language, "help"))
                case Action.UNKNOWN:
                    unknown = notice(ctx.language, "unknown_command", command=command.argument)
                    help_text = notice(ctx.language, "help")
                    await self._reply(
                        ctx,
                        Notice(
                            plain=f"{unknown.plain}\n{help_text.plain}",
                            html=f"{unknown.html}<br>{help_text.html}",
                        ),
                    )
        except MatrixUnavailable:
            raise  # the homeserver is unreachable: nothing to tell the room; the inbox retries
        except Exception:
            reference = new_reference()
            log.exception(
                "Unexpected error [%s] handling %s in %s", reference, ctx.event_id, ctx.room_id
            )
            await self._reply(ctx, notice(ctx.language, "internal_error", ref=reference), "error")
            raise

    async def _start(self, ctx: CommandContext) -> None:
        start_level = ctx.config.room.start_power_level
        # Asking the homeserver costs a round trip: only when the room restricts starting.
        user_level = (
            await self._matrix.power_level(ctx.room_id, ctx.sender) if start_level > 0 else 0
        )
        try:
            outcome = await self._meetings.start(
                ctx.room_id,
                ctx.sender,
                ctx.event_id,
                user_level=user_level,
                start_level=start_level,
                max_participants=ctx.config.max_participants,
            )
        except NotAllowedToStart as refusal:
            await self._reply(
                ctx,
                notice(
                    ctx.language,
                    "start_forbidden",
                    level=refusal.required_level,
                    yours=refusal.user_level,
                ),
            )
            return
        except LiveKitError as err:
            reference = new_reference()
            log.error(
                "LiveKit failed [%s] starting a meeting in %s: %s", reference, ctx.room_id, err
            )
            key = "livekit_down" if err.unreachable else "livekit_refused"
            await self._reply(ctx, notice(ctx.language, key, ref=reference))
            return
        meeting = outcome.meeting
        if not outcome.created:
            starter = await self._matrix.display_name(ctx.room_id, meeting.started_by)
            link = Link(self._links.join(meeting))
            await self._reply(ctx, notice(ctx.language, "already_live", starter=starter, link=link))
            return
        await self._status_message.post(meeting, txn_id=txn_id_for(ctx.event_id, "status"))
        self._observers.meeting_changed(meeting.id)  # e.g. the widget appears now

    async def _end(self, ctx: CommandContext) -> None:
        level = await self._matrix.power_level(ctx.room_id, ctx.sender)
        try:
            meeting = await self._meetings.end(
                ctx.room_id,
                ctx.sender,
                user_level=level,
                moderator_level=ctx.config.end_power_level,
            )
        except NoOpenMeeting as nothing:
            last = nothing.last_ended
            just_ended_by_sender = (
                last is not None
                and last.ended_by == ctx.sender
                and ctx.sent_at_ms > 0
                and (last.ended_at or 0) >= ctx.sent_at_ms - _SAME_END_WINDOW_MS
            )
            if just_ended_by_sender:
                # This very command handled again after a crash, or a second click: the room
                # already saw the end. (LiveKit stamps the end in whole seconds, on its own clock.)
                log.info("%s in %s: the meeting it ends is already over", ctx.event_id, ctx.room_id)
                return
            await self._reply(ctx, notice(ctx.language, "nothing_to_end"))
            return
        except NotAllowedToEnd as refusal:
            starter = await self._matrix.display_name(ctx.room_id, refusal.meeting.started_by)
            await self._reply(
                ctx,
                notice(
                    ctx.language, "end_forbidden", starter=starter, level=refusal.required_level
                ),
            )
            return
        except LiveKitError as err:
            reference = new_reference()
            log.error(
                "LiveKit failed [%s] ending the meeting in %s: %s", reference, ctx.room_id, err
            )
            await self._reply(ctx, notice(ctx.language, "end_failed", ref=reference))
            return
        # The status message's final edit and the end notice replying to it say who ended it.
        self._observers.meeting_changed(meeting.id)

    async def _transcript(self, ctx: CommandContext, args: tuple[str, ...]) -> None:
        """`/visio transcript off`: stop recording the current meeting (no transcript)."""
        if [word.lower() for word in args[:1]] not in (["off"], ["stop"], ["non"], ["arrêt"]):
            await self._reply(ctx, notice(ctx.language, "help"))
            return
        meeting = await self._meetings.open_meeting(ctx.room_id)
        stopped = meeting is not None and await self._recording.stop(meeting.id)
        await self._reply(
            ctx, notice(ctx.language, "recording_stopped" if stopped else "recording_nothing")
        )

    async def _config(self, ctx: CommandContext, args: tuple[str, ...]) -> None:
        if not args:
            await self._reply(ctx, await self._settings.show(ctx.room_id))
            return
        await self._reply(ctx, await self._settings.change(ctx.room_id, ctx.sender, args))

    async def _status(self, ctx: CommandContext) -> None:
        meeting = await self._meetings.open_meeting(ctx.room_id)
        if meeting is None:
            await self._reply(ctx, notice(ctx.language, "status_none"))
            return
        starter = await self._matrix.display_name(ctx.room_id, meeting.started_by)
        since = meeting.started_at or meeting.created_at
        await self._reply(
            ctx,
            notice(
                ctx.language,
                "status_live",
                duration=duration(ctx.language, self._clock.now_ms() - since),
                starter=starter,
                link=Link(self._links.join(meeting)),
            ),
        )

    async def _reply(self, ctx: CommandContext, message: Notice, purpose: str = "reply") -> None:
        await self._matrix.send_notice(
            ctx.room_id, message, reply_to=ctx.event_id, txn_id=txn_id_for(ctx.event_id, purpose)
        )
