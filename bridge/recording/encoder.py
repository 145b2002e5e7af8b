"""16 kHz mono PCM in, an Ogg/Opus file out: one `ffmpeg` process per heard track.

The samples are piped into ffmpeg's standard input and the Ogg stream comes out on its standard
output, which is the file itself (a descriptor the caller opened): ffmpeg never sees a path, so
it can neither follow a link planted in the shared recordings folder nor widen the file's mode.

Ogg pages are self-contained and ffmpeg is told to write each one as soon as it is complete
(`-flush_packets 1`, a page every half second): when the encoder or the whole host dies in the
middle of a call, the file is readable up to its last page, and at most the last second or so
is lost. When only the bridge dies, ffmpeg reads the end of its input and finishes the file
cleanly. ffmpeg runs in its own session, so a Ctrl-C meant for the bridge does not cut it off
before the bridge has handed over the samples it still holds.

ffmpeg is already what the transcription workers decode recordings with
(`bridge/transcription/audio.py`), so it adds no new dependency to the bridge's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2  # signed 16-bit little-endian, mono
# Speech for a transcript: Opus in its speech mode at 24 kb/s is far above what Whisper needs
# and ~180 kB a minute (silence costs much less: Opus spends next to nothing on it).
BITRATE = "24k"
PAGE_DURATION_US = 500_000

_STDERR_TAIL = 600
_FINISH_TIMEOUT_S = 10.0


class EncoderFailed(Exception):
    """ffmpeg is missing, or it stopped: the audio handed to it from then on is not in the file."""


def ffmpeg_path() -> str | None:
    return shutil.which("ffmpeg")


class OpusEncoder:
    """One running ffmpeg turning PCM into Ogg/Opus on a file descriptor.

    Not safe for concurrent calls: one task writes, then finishes.
    """

    def __init__(self, process: asyncio.subprocess.Process, label: str) -> None:
        if process.stdin is None or process.stderr is None:
            raise ValueError("ffmpeg must be started with piped stdin and stderr")
        self._process = process
        self._stdin = process.stdin
        self._stderr_stream = process.stderr
        self._label = label
        self._stderr = b""
        self._stderr_task = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, output_fd: int, label: str, ffmpeg: str | None = None) -> OpusEncoder:
        """Start ffmpeg writing to `output_fd` (the caller keeps and closes its own copy);
        `label` names the track in messages."""
        binary = ffmpeg or ffmpeg_path()
        if binary is None:
            raise EncoderFailed(
                f"cannot record {label}: ffmpeg is not installed (apt-get install ffmpeg)"
            )
        argv = [
            binary,
            "-nostdin",  # never read a terminal: stdin is the audio
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "s16le",
            "-ar",
            str(SAMPLE_RATE),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-c:a",
            "libopus",
            "-application",
            "voip",
            "-b:a",
            BITRATE,
            "-flush_packets",
            "1",
            "-page_duration",
            str(PAGE_DURATION_US),
            "-f",
            "ogg",
            "pipe:1",
        ]
        try:
            # Fixed argv, no shell; the file is a descriptor, never a path ffmpeg could misread.
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=output_fd,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise EncoderFailed(f"cannot record {label}: ffmpeg did not start ({err})") from err
        return cls(process, label)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def _read_stderr(self) -> None:
        # Read to the end, keeping only the tail: ffmpeg must never block on a full pipe.
        while chunk := await self._stderr_stream.read(4096):
            self._stderr = (self._stderr + chunk)[-_STDERR_TAIL:]

    async def _failure(self, what: str) -> EncoderFailed:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._process.wait()
                await self._stderr_task
        reason = self._stderr.decode(errors="replace").strip() or "no message"
        code = self._process.returncode
        return EncoderFailed(f"{what} {self._label}: ffmpeg exited ({code}): {reason}")

    async def write(self, pcm: bytes) -> None:
        """Hand samples to ffmpeg, waiting while its pipe is full (the event loop runs on)."""
        stdin = self._stdin
        if self._process.returncode is not None or stdin.is_closing():
            raise await self._failure("stopped recording")
        try:
            stdin.write(pcm)
            await stdin.drain()
        except (BrokenPipeError, ConnectionError) as err:
            raise await self._failure("stopped recording") from err

    async def finish(self) -> None:
        """End the input and wait for ffmpeg to write the last page; `EncoderFailed` when it
        had failed (the file then holds what it wrote until then)."""
        stdin = self._stdin
        with contextlib.suppress(BrokenPipeError, ConnectionError):
            stdin.close()
            await stdin.wait_closed()
        try:
            async with asyncio.timeout(_FINISH_TIMEOUT_S):
                await self._process.wait()
        except TimeoutError:
            log.error("ffmpeg for %s did not finish in %ss: killed", self._label, _FINISH_TIMEOUT_S)
            self.kill()
            await self._process.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._stderr_task
        if self._process.returncode != 0:
            raise await self._failure("could not finish")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
