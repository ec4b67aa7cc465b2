"""What probing found out about an input: the typed record a plan stores as its `input`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class MediaInfo:
    path: str
    kind: Literal["video", "image"]
    duration: float | None  # seconds of the video stream; None for images
    fps: float | None
    width: int
    height: int
    start_time: float = 0.0  # pts of the first video frame, seconds; 0 for images
    video_codec: str | None = None
    container: str = ""  # demuxer / image format name
    frame_count: int | None = None  # as the container states it; None when it does not (WebM)
    has_audio: bool = False
    audio_channels: int | None = None
    audio_rate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaInfo:
        """Inverse of to_dict; unknown keys are ignored so newer plans still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = required - data.keys()
        if missing:
            raise ValueError(f"media info is missing {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})
