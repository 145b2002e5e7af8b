"""Recordings are not kept once no transcript will come from them, and leftovers are swept.

Fast tier, as `test_transcripts.py`: the LiveKit double fakes the egress and its webhooks (the
test writes the file the egress server would have), the worker runs one pass at a time, and the
retention sweep is one call to `fast.running.retention.purge()` with the manual clock moved on.
The audio of a meeting is what people said in it: it goes when its transcription fails for good,
when `!visio transcript off` stops it, when the egress fails, and whatever a crash or a lost
webhook leaves behind goes with the sweep, never following a link out of the folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fast import ALICE, ROOM, FastBridge
from livekit.protocol import egress, models
from livekit.protocol.webhook import WebhookEvent
from livekit_double import LiveKitDouble
from transcribing import (
    AUDIO,
    ScriptedTranscriber,
    recording_overrides,
    transcribing_bridge,
)

from appservice.wiring import Options
from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.transcription.worker import PermanentFailure, TranscriptWorker

HOUR_MS = 3_600_000
FAILED_TOLD = "La transcription de la visio a échoué"


@dataclass(frozen=True)
class Meeting:
    livekit_room: str


@pytest.fixture
def transcriber() -> ScriptedTranscriber:
    return ScriptedTranscriber()


@pytest.fixture
async def bridge(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber
) -> AsyncIterator[FastBridge]:
    async with transcribing_bridge(tmp_path, livekit, transcriber) as fast:
        yield fast


async def _recorded_meeting(fast: FastBridge) -> Meeting:
    """A meeting in a room that wants transcripts: its audio is being recorded."""
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
    slug = re.search(r"/m/([a-z0-9-]+)", "\n".join(fast.notices()))
    assert slug, fast.notices()
    assert len(fast.livekit.calls("StartRoomCompositeEgress")) == 1
    return Meeting(f"visio-{slug.group(1)}")


def _recording_path(fast: FastBridge) -> Path:
    [started] = fast.livekit.calls("StartRoomCompositeEgress")
    return Path(started.request.file_outputs[0].filepath)


def _being_written(fast: FastBridge) -> Path:
    """The egress server writes the audio as the meeting goes."""
    audio = _recording_path(fast)
    audio.write_bytes(AUDIO)
    return audio


async def _ended_and_queued(fast: FastBridge, meeting: Meeting) -> Path:
    await fast.livekit.join(meeting.livekit_room, ALICE, "Alice")
    audio = _being_written(fast)
    await fast.livekit.finish_room(meeting.livekit_room)
    await fast.settle()
    assert await fast.running.db.fetchval("SELECT state FROM jobs") == "queued"
    return audio


def _worker(fast: FastBridge) -> TranscriptWorker:
    assert fast.running.transcripts is not None
    return fast.running.transcripts


async def _egress_ended(
    fast: FastBridge,
    meeting: Meeting,
    status: egress.EgressStatus.ValueType,
    filename: str,
    error: str = "",
) -> None:
    """LiveKit reports the egress over (its webhook), naming the file it wrote."""
    info = egress.EgressInfo()
    info.CopyFrom(next(iter(fast.livekit.egresses.values())))
    info.status = status
    info.error = error
    info.file_results.append(egress.FileInfo(filename=filename, location=filename))
    event = WebhookEvent(
        event="egress_ended", egress_info=info, room=models.Room(name=meeting.livekit_room)
    )
    assert await fast.livekit.send_webhook(event) == 200
    await fast.settle()


async def _transcript_state(fast: FastBridge) -> str:
    return str(await fast.running.db.fetchval("SELECT transcript_state FROM meetings"))


# ---------------------------------------------------------------- terminal states


@pytest.mark.parametrize("keep", [False, True])
async def test_a_transcription_that_fails_for_good_deletes_the_recording(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber, keep: bool
) -> None:
    """Even with keep_recordings, which keeps only the recordings of published transcripts."""
    overrides = recording_overrides(tmp_path, keep_recordings=keep)
    async with FastBridge(
        tmp_path, livekit, config_overrides=overrides, options=Options(transcriber=transcriber)
    ) as fast:
        transcriber.script = [PermanentFailure("corrupt recording")]
        audio = await _ended_and_queued(fast, await _recorded_meeting(fast))
        assert await _worker(fast).run_once()
        assert sum(FAILED_TOLD in body for body in fast.notices()) == 1
        assert not audio.exists()


async def test_running_out_of_retries_deletes_the_recording(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [RuntimeError("out of memory")] * 3
    audio = await _ended_and_queued(bridge, await _recorded_meeting(bridge))
    for delay in (1000, 2000):
        assert await _worker(bridge).run_once()
        assert audio.exists()  # a passing failure: the next attempt needs it
        bridge.clock.now += delay
    assert await _worker(bridge).run_once()
    assert await _transcript_state(bridge) == "failed_told"
    assert not audio.exists()


async def test_transcript_off_deletes_the_recording_livekit_reports_after_the_stop(
    bridge: FastBridge,
) -> None:
    await _recorded_meeting(bridge)
    audio = _being_written(bridge)
    await bridge.say("!visio transcript off")
    # Stopping the egress makes LiveKit complete the file and report it (egress_ended).
    assert len(bridge.livekit.calls("StopEgress")) == 1
    assert bridge.livekit.webhook_events("egress_ended")
    assert await _transcript_state(bridge) == "cancelled"
    assert not audio.exists()


async def test_transcript_off_deletes_a_complete_recording(bridge: FastBridge) -> None:
    meeting = await _recorded_meeting(bridge)
    audio = _being_written(bridge)
    # The egress finished on its own (a limit reached, say) while the meeting goes on.
    await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_COMPLETE, str(audio))
    assert await _transcript_state(bridge) == "recorded"
    assert audio.exists()
    command = await bridge.say("!visio transcript off")
    assert bridge.answers_to(command) == [
        "L\u2019enregistrement est arrêté\u00a0: il n\u2019y aura pas de "
        "transcription pour cette visio."
    ]
    assert not audio.exists()
    await bridge.livekit.finish_room(meeting.livekit_room)
    await bridge.settle()
    assert await bridge.running.db.fetchval("SELECT COUNT(*) FROM jobs") == 0


async def test_a_failed_egress_deletes_its_partial_file(bridge: FastBridge) -> None:
    meeting = await _recorded_meeting(bridge)
    audio = _being_written(bridge)
    await _egress_ended(
        bridge, meeting, egress.EgressStatus.EGRESS_FAILED, str(audio), error="disk full"
    )
    assert await _transcript_state(bridge) == "failed_told"
    assert not audio.exists()


async def test_a_failed_egress_that_names_no_file_deletes_the_one_asked_for(
    bridge: FastBridge,
) -> None:
    meeting = await _recorded_meeting(bridge)
    audio = _being_written(bridge)
    await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_ABORTED, "")
    assert not audio.exists()


async def test_nothing_outside_the_recordings_folder_is_ever_deleted(
    bridge: FastBridge, tmp_path: Path
) -> None:
    """A recording named outside the folder is refused (as before), and not deleted either:
    neither directly, nor through a link in the folder to a folder outside."""
    meeting = await _recorded_meeting(bridge)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    precious = outside / "precious.ogg"
    precious.write_bytes(b"not the bridge's")
    (tmp_path / "recordings" / "out").symlink_to(outside, target_is_directory=True)
    for named in (precious, tmp_path / "recordings" / "out" / "precious.ogg"):
        await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_COMPLETE, str(named))
        assert precious.read_bytes() == b"not the bridge's"
    assert await _transcript_state(bridge) == "failed_told"
    # Nor by a later failure report about the same egress.
    await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_FAILED, str(precious))
    assert precious.exists()


async def test_a_link_planted_as_the_recording_is_removed_not_followed(
    bridge: FastBridge, tmp_path: Path
) -> None:
    meeting = await _recorded_meeting(bridge)
    precious = tmp_path / "precious.ogg"
    precious.write_bytes(b"not the bridge's")
    planted = _recording_path(bridge)
    planted.symlink_to(precious)
    await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_COMPLETE, str(planted))
    assert await _transcript_state(bridge) == "failed_told"  # refused: it leads outside
    assert not planted.is_symlink()
    assert precious.read_bytes() == b"not the bridge's"


async def test_a_replayed_egress_report_leaves_the_recording_to_its_transcript(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    meeting = await _recorded_meeting(bridge)
    audio = await _ended_and_queued(bridge, meeting)
    await _egress_ended(bridge, meeting, egress.EgressStatus.EGRESS_COMPLETE, str(audio))
    assert audio.exists()  # the queued transcription needs it
    assert await _worker(bridge).run_once()
    assert await _transcript_state(bridge) == "done"


# ---------------------------------------------------------------- the sweep


def _leftover(folder: Path, name: str, age_hours: float, now_ms: int) -> Path:
    path = folder / name
    path.write_bytes(AUDIO)
    when = now_ms / 1000 - age_hours * 3600
    os.utime(path, (when, when))
    return path


async def test_the_sweep_deletes_old_leftovers_only(bridge: FastBridge, tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    now = bridge.clock.now
    stem = "visio-abc-defg-hij-0123456789abcdef01234567"
    old = _leftover(folder, f"{stem}.ogg", 25, now)
    manifest = _leftover(folder, f"{stem}.json", 25, now)
    recent = _leftover(folder, "visio-bcd-efgh-ijk-0123456789abcdef01234567.ogg", 23, now)
    # Not named as the bridge names its recordings: not the bridge's to delete.
    foreign = _leftover(folder, "notes.txt", 1000, now)
    # A link in the folder is neither followed nor removed.
    outside = tmp_path / "outside.ogg"
    outside.write_bytes(b"elsewhere")
    link = folder / "visio-cde-fghi-jkl-0123456789abcdef01234567.ogg"
    link.symlink_to(outside)
    os.utime(link, (now / 1000 - 1e6,) * 2, follow_symlinks=False)
    os.utime(outside, (now / 1000 - 1e6,) * 2)
    report = await bridge.running.retention.purge()
    assert report.recordings == 2
    assert not old.exists() and not manifest.exists()
    assert recent.exists() and foreign.exists()
    assert link.is_symlink() and outside.read_bytes() == b"elsewhere"


async def test_the_sweep_spares_what_meetings_still_need(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    """A recording waiting for its transcription is kept however old (the worker may be down,
    or the job waiting for a retry)."""
    transcriber.script = [RuntimeError("no worker memory")] * 3
    audio = await _ended_and_queued(bridge, await _recorded_meeting(bridge))
    bridge.clock.now += 48 * HOUR_MS
    assert (await bridge.running.retention.purge()).recordings == 0
    assert audio.exists()
    # The job, waiting for a retry, still needs it.
    assert await _worker(bridge).run_once()
    bridge.clock.now += 48 * HOUR_MS
    assert (await bridge.running.retention.purge()).recordings == 0
    assert audio.exists()


async def test_the_sweep_spares_a_meeting_being_recorded(bridge: FastBridge) -> None:
    await _recorded_meeting(bridge)
    audio = _being_written(bridge)
    os.utime(audio, (0, 0))  # however old it looks
    bridge.clock.now += 48 * HOUR_MS
    assert (await bridge.running.retention.purge()).recordings == 0
    assert audio.exists()


@pytest.mark.parametrize("keep", [False, True])
async def test_kept_recordings_are_kept_as_long_as_their_meeting(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber, keep: bool
) -> None:
    overrides = recording_overrides(tmp_path, keep_recordings=keep)
    async with FastBridge(
        tmp_path, livekit, config_overrides=overrides, options=Options(transcriber=transcriber)
    ) as fast:
        audio = await _ended_and_queued(fast, await _recorded_meeting(fast))
        assert await _worker(fast).run_once()
        assert audio.exists() is keep
        if not keep:
            return
        fast.clock.now += 29 * 24 * HOUR_MS
        await fast.running.retention.purge()
        assert audio.exists()
        fast.clock.now += 25 * HOUR_MS
        report = await fast.running.retention.purge()
        assert report.meetings == 1 and report.recordings == 1
        assert not audio.exists()
