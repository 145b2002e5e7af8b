"""Keeping the transcription stack from reaching out: no telemetry, no model downloads.

pyannote.audio 4 reports usage by default, huggingface_hub fetches anything that is not a local
path, and onnxruntime (faster-whisper's voice activity filter) carries Microsoft's telemetry
client. Meetings of the State stay on the operator's machines: `stay_offline()` turns all of it
off, and every path that builds a model calls it first.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_ENVIRONMENT = {
    "PYANNOTE_METRICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
# pyannote's pipelines that send the audio to pyannoteAI's servers instead of running here.
REMOTE_PIPELINE_MODULES = ("pyannote.audio.pipelines.pyannoteai", "pyannoteai")


class RemotePipelineRefused(RuntimeError):
    """An operator's pipeline would send the meeting's audio to a remote service."""


def stay_offline() -> None:
    """Turn off every telemetry and download path; call before building any model."""
    os.environ.update(_ENVIRONMENT)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        # Must run before the first InferenceSession: the telemetry provider starts with it.
        onnxruntime.disable_telemetry_events()


def check_local_pipeline(config_file: Path) -> None:
    """Refuse an operator's pyannote pipeline whose class runs on a remote service."""
    import yaml

    config: Any = yaml.safe_load(config_file.read_text())
    name = config.get("pipeline", {}).get("name", "") if isinstance(config, dict) else ""
    if isinstance(name, str) and name.startswith(REMOTE_PIPELINE_MODULES):
        raise RemotePipelineRefused(f"{config_file}: {name} sends audio to a remote service")


def is_remote(pipeline: object) -> bool:
    return type(pipeline).__module__.startswith(REMOTE_PIPELINE_MODULES)
