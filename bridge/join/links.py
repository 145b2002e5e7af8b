"""The addresses the bridge hands out for a meeting, built in this one place.

They carry the meeting's slug only, never a token (ARCHITECTURE invariant 4): whoever opens one
still has to get a token from the join page or the token API.
"""

from __future__ import annotations

from bridge.meetings.store import Meeting


class MeetingLinks:
    def __init__(self, public_url: str) -> None:
        self._base = public_url.rstrip("/")

    def join(self, meeting: Meeting) -> str:
        """The join page, posted in the room and shown in the status message."""
        return f"{self._base}/m/{meeting.slug}"

    def widget(self, meeting: Meeting) -> str:
        """The room widget's page (its client fills in the widget's URL variables)."""
        return f"{self._base}/widget/{meeting.slug}"
