"""A call-worker killed mid-call, end to end: real Synapse, PostgreSQL, the real livekit-server,
two `visio-bridge call-worker` processes, a person speaking espeak-ng lines over WebRTC, and the
real models.

The first worker holds the call and records Alice; it is killed (SIGKILL, as the OOM killer
would); the second takes the call over once the lease runs out and records what she says next.
The transcript keeps both of her sentences and says where audio is missing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from harness import DatabaseTarget, Human, Stack
from live_calls import join_as_member, running_live_stack, start_meeting, wait_until
from transcript_thread import heard, thread_files

from bridge.room_settings.config import ROOM_CONFIG_EVENT

pytestmark = [pytest.mark.synapse, pytest.mark.models]

# Sentences the shipped tiny English model hears well in this espeak-ng voice after Opus.
BEFORE = "The printers on the third floor are broken again."
AFTER = "Sorry, my connection dropped for a moment."
LEASE_S = 5  # the shortest lease the settings allow: a quick takeover


class CallWorker:
    """`visio-bridge call-worker` in a process of its own, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CallWorker:
        command = shutil.which("visio-bridge", path=str(Path(sys.executable).parent))
        assert command, "the visio-bridge command is installed with the package"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [command, "call-worker", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def _log(self) -> str:
        return self.log.read_text(errors="replace")

    async def owner(self, timeout: float = 30) -> str:
        """Its name in leases, from its log once it runs."""
        await wait_until(lambda: _owner_in(self._log()) is not None, f"{self.log.name}", timeout)
        return str(_owner_in(self._log()))

    async def recording(self, timeout: float = 30) -> None:
        """Once it is in the call, recording: it subscribes to microphones as they come."""
        await wait_until(
            lambda: "Recording each participant" in self._log(), f"{self.log.name}", timeout
        )
        await asyncio.sleep(1.5)  # the subscription to her microphone (WebRTC negotiation)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _owner_in(log: str) -> str | None:
    found = re.search(r"Call worker (\S+) running", log)
    return found.group(1) if found else None


async def _until_async(probe: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await probe()) is None:
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


@asynccontextmanager
async def _workers(stack: Stack, workdir: Path) -> AsyncIterator[list[CallWorker]]:
    config = workdir / "call-worker.yaml"
    config.write_text(yaml.safe_dump(stack.config))
    workers: list[CallWorker] = []
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for worker in workers:
            print(f"---- {worker.log.name}\n{worker.log.read_text(errors='replace')[-4000:]}")


async def test_a_killed_call_worker_is_replaced_and_the_transcript_says_what_is_missing(
    tmp_path: Path, postgres: DatabaseTarget
) -> None:
    overrides = {
        "meetings": {"transcription_allowed": True},
        # The bridge leaves every call to the call-workers, and transcribes itself.
        "calls": {"in_process": False, "lease_seconds": LEASE_S},
        "transcription": {"in_process": True},
    }
    async with running_live_stack(tmp_path, overrides, database=postgres) as stack:
        db = await asyncpg.connect(postgres.url, **postgres.args)
        try:
            async with _workers(stack, tmp_path) as workers:
                await _meeting(stack, tmp_path, workers, db)
        finally:
            await db.close()


async def _meeting(
    stack: Stack, workdir: Path, workers: list[CallWorker], db: asyncpg.Connection
) -> None:
    config = workdir / "call-worker.yaml"
    first = CallWorker(config, workdir / "call-worker-1.log").start()
    workers.append(first)
    first_owner = await first.owner()

    alice: Human = await stack.human("alice", "Alice Martin")
    room = await stack.room_with_bot(alice)
    await alice.client.room_put_state(
        room, ROOM_CONFIG_EVENT, {"transcription": "on", "transcript_language": "en"}
    )
    status, slug = await start_meeting(alice, room)
    await alice.wait_for(room, lambda e: "enregistré pour en produire" in e["content"]["body"])
    call = await join_as_member(stack, alice, slug)

    async def lease_owner() -> str | None:
        return await db.fetchval("SELECT owner FROM call_leases")  # type: ignore[no-any-return]

    assert await _until_async(lease_owner, 30, "the first worker's lease") == first_owner
    # The second worker only starts now, so the call is surely the first one's.
    second = CallWorker(config, workdir / "call-worker-2.log").start()
    workers.append(second)
    second_owner = await second.owner()

    async def recorded_by(owner: str) -> Any:
        return await db.fetchval("SELECT 1 FROM recorded_tracks WHERE recorder=$1", owner)

    await first.recording()
    await call.speak(BEFORE, workdir, voice="en-us+f3")
    await asyncio.sleep(1.0)
    assert await recorded_by(first_owner), "the first worker recorded her"
    first.kill()

    async def taken_over() -> str | None:
        owner = await lease_owner()
        return owner if owner == second_owner else None

    await _until_async(taken_over, 4 * LEASE_S, "the second worker to take the call over")
    await second.recording()
    await call.speak(AFTER, workdir, voice="en-us+f3")
    await asyncio.sleep(0.5)
    assert await recorded_by(second_owner), "the second worker recorded her"
    await call.leave()

    # The killed worker never closed its file: the transcript waits until it is stale.
    summary, markdown, _vtt = await thread_files(alice, room, status["event_id"], timeout=300)
    body = summary["content"]["body"]
    assert "Audio manquant (enregistrement interrompu)" in body, body
    text = (await alice.client.download(markdown["content"]["url"])).body.decode()
    said = " ".join(re.findall(r"^\*\*Alice Martin\*\* \[[\d:]+\]: (.*)$", text, re.MULTILINE))
    assert heard(BEFORE, said), text
    assert heard(AFTER, said), text
    # The gap lies between her two sentences, where the call had no recorder.
    lines = text.split("\n\n")
    [gap] = [n for n, line in enumerate(lines) if "audio manquant de" in line]
    assert heard(BEFORE, " ".join(lines[:gap])), text
    assert heard(AFTER, " ".join(lines[gap + 1 :])), text
