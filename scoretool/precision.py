"""Which precision a model runs in: `--precision auto|fp32|fp16|bf16|int8`, resolved per device.

`auto` picks, per device, the fastest precision this machine runs well; `choose` says which and why
(the console and `--json` repeat the reason). fp32 is the reference path everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ScoreToolError

Role = Literal["music", "caption"]


@dataclass(frozen=True)
class Choice:
    precision: str  # concrete: fp32 | fp16 | bf16 | int8
    why: str


def choose(requested: str, device: str, role: Role) -> Choice:
    """The precision to load a `role` model in on `device`, for `--precision requested`."""
    cuda = device.startswith("cuda")
    if requested != "auto":
        if requested == "fp16" and not cuda:
            raise ScoreToolError(f"--precision fp16 runs on a CUDA GPU only, not on {device}: use bf16 or int8")
        return Choice(requested, f"--precision {requested}")
    if cuda:
        if role == "music":
            return Choice("fp16", "auto: fp16 on CUDA")
        return Choice("fp32", "auto: BLIP stays in fp32 on CUDA")
    return Choice("fp32", f"auto: fp32 on {device}")
