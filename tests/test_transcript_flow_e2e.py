"""The transcript as a real Matrix client receives it, on real Synapse and the LiveKit double:
a summary notice and two `m.file` events in a thread under the status message, the files
uploaded to the media repository. The behaviour (recording, `transcript off`, failures,
retries) is tested on the fast tier, in tests/test_transcripts.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import Human, Stack
from livekit_double import LiveKitDouble

from bridge.room_settings.config import ROOM_CONFIG_EVENT
from bridge.transcription.attribution import Presence, Utterance
from bridge.transcription.transcript import TrackAudio, Transcript

pytestmark = pytest.mark.synapse


class ScriptedTranscriber:
    """Stands in for the models: answers with a fixed transcript."""

    def transcribe(
        self, audio: Path, language: str, presences: Sequence[Presence], unknown_name: str
    ) -> Transcript:
        return Transcript(
            [
                Utterance("Alice", 0.5, 4.0, "Bonjour à tous."),
                Utterance(unknown_name.format(n=1), 4.5, 9.0, "Bonjour Alice, on commence ?"),
            ]
        )

    def transcribe_tracks(
        self, tracks: Sequence[TrackAudio], language: str | None, voice_name: str
    ) -> Transcript:
        raise AssertionError("LiveKit's double records with egress here")


@pytest.fixture
async def recording_stack(tmp_path: Path, livekit: LiveKitDouble) -> AsyncIterator[Stack]:
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(tmp_path / "recordings"), "recorder": "egress"},
    }
    (tmp_path / "recordings").mkdir()
    stack = Stack(tmp_path, livekit, config_overrides=overrides)
    stack.transcriber = ScriptedTranscriber()
    async with stack as running:
        yield running


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


async def test_the_transcript_reaches_a_client_as_a_thread_with_files(
    recording_stack: Stack,
) -> None:
    stack = recording_stack
    alice = await stack.human("alice", "Alice")
    room = await stack.room_with_bot(alice)
    await alice.client.room_put_state(room, ROOM_CONFIG_EVENT, {"transcription": "on"})
    await alice.send(room, "!visio")
    [status] = await alice.wait_for(room, lambda e: "/m/" in e["content"]["body"])
    slug = re.search(r"/m/([a-z0-9-]+)", status["content"]["body"])
    assert slug
    await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
    lk_room = f"visio-{slug.group(1)}"
    [started] = stack.livekit.calls("StartRoomCompositeEgress")
    Path(started.request.file_outputs[0].filepath).write_bytes(b"OggS fake audio")
    await stack.livekit.finish_room(lk_room)  # ends the recording too (egress_ended)
    summary, markdown_file, vtt_file = await _wait_thread(alice, room, status["event_id"], 3)
    assert summary["sender"] == stack.settings.bot_mxid
    assert summary["content"]["msgtype"] == "m.notice"
    assert summary["content"]["body"].startswith("Transcription de la visio")
    for file, suffix, mimetype in (
        (markdown_file, "md", "text/markdown"),
        (vtt_file, "vtt", "text/vtt"),
    ):
        content = file["content"]
        assert content["msgtype"] == "m.file"
        assert content["body"] == f"transcription-{slug.group(1)}.{suffix}"
        assert content["info"]["mimetype"] == mimetype
        assert content["url"].startswith("mxc://")
    download = await alice.client.download(markdown_file["content"]["url"])
    assert b"**Alice** [00:00:00]: Bonjour" in download.body
    download = await alice.client.download(vtt_file["content"]["url"])
    assert download.body.startswith(b"WEBVTT")
