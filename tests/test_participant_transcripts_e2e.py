"""Transcripts that know who spoke, end to end: real Synapse, the real livekit-server, people
in the call over real WebRTC (the livekit rtc SDK) speaking espeak-ng lines, the bridge's own
participant recording each of them, and the real models.

Alice and Bob are members, Zoé a guest; Bob and Zoé talk over each other; Bob drops out and
comes back mid-call. The thread under the status message must name each speaker as the room
knows them, keep both voices' words where they overlapped, and keep the order of the call.
A meeting room on one microphone, two people taking turns, gets two voices under its name.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from call_people import CallPerson
from harness import Stack
from live_calls import (
    bridge_in_call,
    join_as_guest,
    join_as_member,
    running_live_stack,
    start_meeting,
)
from transcript_thread import heard, thread_files

from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = [pytest.mark.synapse, pytest.mark.models]

ALICE_LINE = "Good morning everyone, thank you for coming today."
BOB_LINE = "The printers on the third floor are broken again."
ZOE_LINE = "My train was cancelled, so I am working from home."
BOB_AGAIN = "Sorry, my connection dropped for a moment."


async def test_the_transcript_names_each_speaker_and_keeps_overlapping_words(
    tmp_path: Path,
) -> None:
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"recordings_dir": str(tmp_path / "recordings"), "in_process": True},
    }
    (tmp_path / "recordings").mkdir()
    async with running_live_stack(tmp_path, overrides) as stack:
        await _meeting(stack, tmp_path)


async def _meeting(stack: Stack, workdir: Path) -> None:
    alice = await stack.human("alice", "Alice Martin")
    bob = await stack.human("bob", "Bob Durand")
    room = await stack.room_with_bot(alice)
    await alice.client.room_invite(room, bob.user_id)
    await bob.client.join(room)
    await alice.client.room_put_state(
        room, ROOM_CONFIG_EVENT, {"transcription": "on", "transcript_language": "en"}
    )
    status, slug = await start_meeting(alice, room)
    await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
    alice_call = await join_as_member(stack, alice, slug)
    bob_call = await join_as_member(stack, bob, slug)
    zoe = await join_as_guest(stack, slug, "Zoé")
    await bridge_in_call(alice_call)
    await alice_call.speak(ALICE_LINE, workdir, voice="en-us+f3")
    await asyncio.sleep(0.5)
    # Bob and Zoé at once: neither voice may vanish.
    await asyncio.gather(
        bob_call.speak(BOB_LINE, workdir, voice="en-gb+m3"),
        zoe.speak(ZOE_LINE, workdir, voice="en-us"),
    )
    # Bob's connection drops; he comes back with a new connection (a new track).
    await bob_call.leave()
    bob_back: CallPerson = await join_as_member(stack, bob, slug)
    # Back a few seconds later: a pause long enough that his next sentence is a line of its own.
    await asyncio.sleep(3.0)
    await bob_back.speak(BOB_AGAIN, workdir, voice="en-gb+m3")
    await asyncio.sleep(0.5)
    for person in (alice_call, bob_back, zoe):
        await person.leave()
    summary, markdown, _vtt = await thread_files(alice, room, status["event_id"])
    assert "3 personnes" in summary["content"]["body"], summary["content"]["body"]
    text = (await alice.client.download(markdown["content"]["url"])).body.decode()
    lines = re.findall(r"^\*\*(.+?)\*\* \[(\d\d:\d\d:\d\d)\]: (.*)$", text, re.MULTILINE)
    said: dict[str, str] = {}
    for speaker, _at, words in lines:
        said[speaker] = f"{said.get(speaker, '')} {words}"
    guest = "Zoé (personne invitée)"
    assert set(said) == {"Alice Martin", "Bob Durand", guest}, text
    assert heard(ALICE_LINE, said["Alice Martin"]), text
    assert heard(BOB_LINE, said["Bob Durand"]), text
    assert heard(BOB_AGAIN, said["Bob Durand"]), text
    assert heard(ZOE_LINE, said[guest]), text
    # In the order of the call: Alice first, Bob's return last.
    order = [speaker for speaker, _at, _words in lines]
    assert order[0] == "Alice Martin" and order[-1] == "Bob Durand", text
    last_bob = next(w for s, _a, w in reversed(lines) if s == "Bob Durand")
    assert heard(BOB_AGAIN, last_bob), text


# A meeting room on one microphone: two people taking turns (two espeak-ng voices).
ROOM_LINES = [
    ("en-us+f3", "Good morning, this is the meeting room in Lyon, we are two here today."),
    ("en-gb+m3", "Yes, and I will present the figures for the third quarter of the year."),
    ("en-us+f3", "The sales went up in the south, but the north is still behind the plan."),
    ("en-gb+m3", "We need two more people in the support team before the summer holidays."),
    ("en-us+f3", "I agree, let us write to the human resources department this week."),
    ("en-gb+m3", "Thank you, I will send the slides to everyone after the call."),
]


async def test_two_voices_on_one_microphone_are_told_apart(tmp_path: Path) -> None:
    overrides = {
        "meetings": {"transcription_allowed": True},
        "transcription": {"in_process": True},
    }
    async with running_live_stack(tmp_path, overrides) as stack:
        alice = await stack.human("alice", "Alice Martin")
        room = await stack.room_with_bot(alice)
        await alice.client.room_put_state(
            room, ROOM_CONFIG_EVENT, {"transcription": "on", "transcript_language": "en"}
        )
        status, slug = await start_meeting(alice, room)
        await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
        lyon = await join_as_guest(stack, slug, "Salle Rhône")
        await bridge_in_call(lyon)
        for voice, line in ROOM_LINES:
            await lyon.speak(line, tmp_path, voice=voice)
            await asyncio.sleep(0.6)
        await lyon.leave()
        _summary, markdown, _vtt = await thread_files(alice, room, status["event_id"])
        text = (await alice.client.download(markdown["content"]["url"])).body.decode()
    lines = re.findall(r"^\*\*(.+?)\*\* \[[\d:]+\]: (.*)$", text, re.MULTILINE)
    voices = {f"Salle Rhône (personne invitée) — voix {n}" for n in (1, 2)}
    assert {speaker for speaker, _words in lines} == voices, text
    # Each line under the voice that said it: voice 1 spoke first.
    said = {voice: " ".join(w for s, w in lines if s == voice) for voice in voices}
    right = sum(
        heard(line, said[f"Salle Rhône (personne invitée) — voix {1 if n % 2 == 0 else 2}"])
        for n, (_voice, line) in enumerate(ROOM_LINES)
    )
    assert right >= 5, text
