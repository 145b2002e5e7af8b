"""The meeting as a room widget: added while the call is live (room setting `widget`), then removed.

State event `im.vector.modular.widgets` (state_key = our widget id) with the widget's URL,
using the client's template variables so that the widget page learns who opens it; `pinned`
also places it in the room's top container (`io.element.widgets.layout`, merged with whatever
layout the room has). Each sync reads the room state before writing, so it is idempotent and
safe after a restart. When the room does not let the bot write widgets, the bot says which
power level it needs, once per meeting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.ids import MeetingID
from bridge.join.links import MeetingLinks
from bridge.meetings.store import Meeting, MeetingState, MeetingStore
from bridge.messages.render import notice
from bridge.ports import BotLacksPower, Matrix, txn_id_for
from bridge.room_settings.config import Widget
from bridge.room_settings.service import RoomSettings

log = logging.getLogger(__name__)

WIDGET_EVENT = "im.vector.modular.widgets"
LAYOUT_EVENT = "io.element.widgets.layout"
WIDGET_ID = "fr.visio_bridge.meeting"
# Filled in by the client when it opens the widget (the widget page reads them).
_URL_VARIABLES = (
    "userId=$matrix_user_id&displayName=$matrix_display_name&roomId=$matrix_room_id"
    "&widgetId=$matrix_widget_id&lang=$org.matrix.msc2873.client_language"
)


class WidgetKeeper:
    def __init__(
        self,
        meetings: MeetingStore,
        matrix: Matrix,
        room_settings: RoomSettings,
        links: MeetingLinks,
    ) -> None:
        self._meetings = meetings
        self._matrix = matrix
        self._room_settings = room_settings
        self._links = links
        self._room_locks: dict[str, asyncio.Lock] = {}

    def widget_url(self, meeting: Meeting) -> str:
        return f"{self._links.widget(meeting)}?{_URL_VARIABLES}"

    async def sync(self, meeting_id: MeetingID) -> None:
        meeting = await self._meetings.by_id(meeting_id)
        if meeting is None:
            return
        # One room's widget writes in order: a quick start-then-end must end with no widget.
        lock = self._room_locks.setdefault(meeting.room_id, asyncio.Lock())
        async with lock:
            meeting = await self._meetings.by_id(meeting_id)
            if meeting is None:
                return
            config = await self._room_settings.effective(meeting.room_id)
            wanted = meeting.state is MeetingState.LIVE and config.room.widget is not Widget.OFF
            current = await self._matrix.state_content(meeting.room_id, WIDGET_EVENT, WIDGET_ID)
            ours = bool(current) and (current or {}).get("data", {}).get("meeting_id") == meeting.id
            try:
                if wanted and not ours:
                    await self._add(meeting, pinned=config.room.widget is Widget.PINNED)
                elif not wanted and ours:
                    await self._remove(meeting)
            except BotLacksPower as err:
                language = config.language
                await self._matrix.send_notice(
                    meeting.room_id,
                    notice(language, "bot_lacks_widget_power", level=err.needed),
                    txn_id=txn_id_for(meeting.id, "widget-power"),
                )

    async def _add(self, meeting: Meeting, *, pinned: bool) -> None:
        content: dict[str, Any] = {
            "id": WIDGET_ID,
            "type": "m.custom",
            "name": "Visio",
            "url": self.widget_url(meeting),
            "data": {"meeting_id": meeting.id, "title": "Visio"},
            "creatorUserId": self._matrix.bot_mxid,
            "waitForIframeLoad": True,
        }
        await self._matrix.send_state(meeting.room_id, WIDGET_EVENT, content, WIDGET_ID)
        log.info("Widget added for meeting %s in %s", meeting.id, meeting.room_id)
        if pinned:
            layout = await self._matrix.state_content(meeting.room_id, LAYOUT_EVENT) or {}
            widgets = dict(layout.get("widgets") or {})
            widgets[WIDGET_ID] = {"container": "top", "index": 0, "width": 100, "height": 50}
            await self._matrix.send_state(
                meeting.room_id, LAYOUT_EVENT, {**layout, "widgets": widgets}
            )

    async def _remove(self, meeting: Meeting) -> None:
        await self._matrix.send_state(meeting.room_id, WIDGET_EVENT, {}, WIDGET_ID)
        layout = await self._matrix.state_content(meeting.room_id, LAYOUT_EVENT)
        if layout and WIDGET_ID in (layout.get("widgets") or {}):
            widgets = {k: v for k, v in layout["widgets"].items() if k != WIDGET_ID}
            await self._matrix.send_state(
                meeting.room_id, LAYOUT_EVENT, {**layout, "widgets": widgets}
            )
        log.info("Widget removed for meeting %s in %s", meeting.id, meeting.room_id)
