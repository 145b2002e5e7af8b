"""What people find under a call's status message once its transcript is done: the thread's
three events (summary, Markdown, WebVTT), and whether a sentence was heard in it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from harness import Human


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def heard(line: str, said: str, share: float = 0.4) -> bool:
    """Enough of `line`'s words are in `said`: the shipped tiny Whisper model gets about half of
    an espeak-ng voice's words right after Opus; what matters in these tests is whose words
    they are."""
    words = words_of(line)
    present = set(words_of(said))
    return sum(word in present for word in words) >= share * len(words)


async def thread_files(human: Human, room: str, root: str, timeout: float = 240) -> list[Any]:
    """The transcript's thread under `root` (the status message), once it has its 3 events."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        thread = [
            e
            for e in await human.history(room)
            if e["content"].get("m.relates_to", {}).get("event_id") == root
            and e["content"].get("m.relates_to", {}).get("rel_type") == "m.thread"
        ]
        if len(thread) >= 3:
            return thread
        await asyncio.sleep(1)
    raise AssertionError("no transcript in the thread")
