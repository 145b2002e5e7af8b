"""Input the bridge must bound or refuse cleanly: command integers, chat streams from the call,
recording paths from LiveKit, and the webhook id table.

Each refusal is an ordinary answer (an "invalid value" notice, a failed recording, a log line),
never an exception that the inbox retries, a file outside its folder, or a table that grows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fast import ALICE, ROOM, FastBridge
from livekit.protocol import egress, models
from livekit.protocol.webhook import WebhookEvent
from livekit_double import LiveKitDouble

from bridge.calls.participant import read_capped_text
from bridge.chat.messages import MAX_CHAT_CHARS
from bridge.meetings.lifecycle import WEBHOOK_ID_TTL_MS
from bridge.room_settings.config import ROOM_CONFIG_EVENT, RoomConfig, RoomConfigError, with_field

# ---------------------------------------------------------------- `!visio config` integers


@pytest.mark.parametrize("typed", ["--5", "²", "5²", "٣", "-", "1e3", "0x10", " 1 0", "9" * 12])
def test_integer_words_that_are_not_plain_ascii_numbers_are_refused(typed: str) -> None:
    with pytest.raises(RoomConfigError) as refused:
        with_field(RoomConfig(), "start_power_level", typed)
    assert refused.value.field == "start_power_level"


def test_plain_integers_still_work_and_negatives_are_out_of_range() -> None:
    assert with_field(RoomConfig(), "max_participants", " 42 ").max_participants == 42
    with pytest.raises(RoomConfigError) as negative:
        with_field(RoomConfig(), "start_power_level", "-5")
    assert negative.value.problem == "out_of_range"


@pytest.mark.parametrize("typed", ["--5", "²"])
async def test_a_malformed_integer_is_answered_not_retried(fast: FastBridge, typed: str) -> None:
    command = await fast.say(f"!visio config start_power_level {typed}")
    [answer] = fast.answers_to(command)
    assert answer.startswith(
        "Réglages Visio refusés\u00a0: le réglage «\u00a0start_power_level\u00a0»"
    ), answer
    assert "erreur inattendue" not in " ".join(fast.notices())
    row = await fast.running.db.fetchrow(
        "SELECT state, attempts FROM inbox WHERE event_id=$1", command
    )
    assert row is not None and (row["state"], row["attempts"]) == ("done", 0)


# ---------------------------------------------------------------- chat text streams


class _Stream:
    """A text stream reader double: endless (or `chunks` long), counting what was taken."""

    def __init__(self, chunk: str, chunks: int | None = None) -> None:
        self.chunk = chunk
        self.left = chunks
        self.taken = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[str]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[str]:
        while self.left is None or self.taken < self.left:
            if self.closed:
                return
            self.taken += 1
            yield self.chunk

    def close(self) -> None:
        self.closed = True


async def test_an_endless_text_stream_is_read_only_up_to_the_cap() -> None:
    stream = _Stream("x" * 1000)  # never ends on its own
    text = await read_capped_text(stream)
    assert text == "x" * MAX_CHAT_CHARS
    assert stream.taken == MAX_CHAT_CHARS // 1000  # not one chunk more than needed
    assert stream.closed  # the SDK's subscription is released


async def test_a_short_text_stream_is_read_whole() -> None:
    stream = _Stream("héllo ", chunks=3)
    assert await read_capped_text(stream) == "héllo " * 3
    assert stream.taken == 3 and stream.closed


async def test_a_chunk_crossing_the_cap_is_cut_there() -> None:
    stream = _Stream("y" * 3000)
    assert await read_capped_text(stream, limit=4000) == "y" * 4000
    assert stream.taken == 2


# ---------------------------------------------------------------- recording paths


@pytest.fixture
async def recorder(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[FastBridge]:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(recordings), "recorder": "egress"},
    }
    async with FastBridge(tmp_path, livekit, config_overrides=overrides) as fast:
        yield fast


async def _recording_meeting(fast: FastBridge) -> tuple[str, egress.EgressInfo]:
    """A live meeting being recorded: its LiveKit room and the double's egress."""
    await fast.event(
        {
            "type": ROOM_CONFIG_EVENT,
            "state_key": "",
            "sender": ALICE,
            "room_id": ROOM,
            "content": {"transcription": "on"},
        }
    )
    await fast.say("!visio")
    [lk_room] = fast.livekit.rooms
    [info] = fast.livekit.egresses.values()
    return lk_room, info


def _ended(info: egress.EgressInfo, filename: str) -> WebhookEvent:
    done = egress.EgressInfo()
    done.CopyFrom(info)
    done.status = egress.EgressStatus.EGRESS_COMPLETE
    done.file_results.append(egress.FileInfo(filename=filename, location=filename))
    room = models.Room(name=info.room_name)
    return WebhookEvent(event="egress_ended", egress_info=done, room=room)


@pytest.mark.parametrize(
    "where",
    [
        "/etc/passwd",
        "{dir}/../escape.ogg",
        "{dir}/link.ogg",  # a symbolic link in the folder, to a file outside it
        "{dir}",
        "relative.ogg",
    ],
)
async def test_a_recording_outside_the_folder_is_refused(
    recorder: FastBridge, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    folder = recorder.workdir / "recordings"
    (folder / "link.ogg").symlink_to(recorder.workdir / "elsewhere.ogg")
    lk_room, info = await _recording_meeting(recorder)
    with caplog.at_level(logging.WARNING, logger="bridge.recording.recordings"):
        assert await recorder.livekit.send_webhook(_ended(info, where.format(dir=folder))) == 200
        await recorder.settle()
    assert any("outside" in r.getMessage() for r in caplog.records)
    row = await recorder.running.db.fetchrow(
        "SELECT transcript_state, recording_path FROM meetings"
    )
    assert row is not None
    assert row["transcript_state"].startswith("failed") and row["recording_path"] is None
    assert any("L\u2019enregistrement de la visio a échoué" in n for n in recorder.notices())
    await recorder.livekit.finish_room(lk_room)
    await recorder.settle()
    assert await recorder.running.db.fetchval("SELECT COUNT(*) FROM jobs") == 0


async def test_a_recording_inside_the_folder_is_kept(recorder: FastBridge) -> None:
    _, info = await _recording_meeting(recorder)
    inside = str(recorder.workdir / "recordings" / "sub" / ".." / "meeting.ogg")
    assert await recorder.livekit.send_webhook(_ended(info, inside)) == 200
    await recorder.settle()
    row = await recorder.running.db.fetchrow(
        "SELECT transcript_state, recording_path FROM meetings"
    )
    assert row is not None and row["transcript_state"] == "recorded"


# ---------------------------------------------------------------- webhook ids


async def test_webhook_ids_older_than_a_day_are_purged_by_the_reconciler(
    fast: FastBridge,
) -> None:
    await fast.say("!visio")
    [lk_room] = fast.livekit.rooms
    await fast.livekit.join(lk_room, "guest-1", "Zoé")
    db = fast.running.db
    old = await db.fetchval("SELECT COUNT(*) FROM livekit_webhooks")
    assert old >= 2  # room_started, participant_joined
    fast.clock.now += WEBHOOK_ID_TTL_MS  # exactly a day: still kept
    await fast.running.lifecycle.reconcile()
    assert await db.fetchval("SELECT COUNT(*) FROM livekit_webhooks") == old
    fast.clock.now += 1
    await fast.livekit.join(lk_room, "guest-2", "Yann")  # a fresh one, received now
    await fast.running.lifecycle.reconcile()
    [kept] = await db.fetch("SELECT id FROM livekit_webhooks")
    [fresh] = fast.livekit.webhook_events("participant_joined")[-1:]
    assert kept["id"] == fresh.id
    assert re.fullmatch(r"EV_\w+", kept["id"])
