"""The plan: everything a render needs, as an editable, versioned JSON file.

`scoretool plan` writes it, a person may edit prompts, seeds or boundaries, and `scoretool render`
reads it back. Scenes are numbered from 1 wherever a person sees them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import PlanError
from .files import first_line
from .media.info import MediaInfo
from .bridge import BridgeName
from .specs import Precision, Sampling
from .validation import check_input, check_scenes, check_settings

if TYPE_CHECKING:
    from .presets import Preset

PLAN_VERSION = 1
Transition = Literal["crossfade", "cut", "continue"]
OriginalAudio = Literal["auto", "replace", "mix", "duck"]
DEFAULT_MUSIC_MODEL = "musicgen-small"


@dataclass
class Settings:
    """Every knob of a run. Stored in the plan so a render reproduces the plan's choices."""

    caption_model: str = "blip-base"
    music_model: str | None = None  # None: not given, so a preset may choose (else DEFAULT_MUSIC_MODEL)
    llm_model: str | None = None  # None: the bridge's default (recorded here once a plan is made)
    bridge: BridgeName = "auto"  # auto: anthropic if ANTHROPIC_API_KEY is set, else offline
    device: str = "auto"
    precision: Precision = "auto"  # see scoretool.precision
    seed: int = 0  # scene N's seed is seed + N - 1
    preset: str | None = None  # a style for the whole video (`scoretool presets`)
    presets_dir: str | None = None  # the user's own presets, besides the built-in ones
    prompt: str | None = None  # the user's global prompt: wins over what the pictures suggest
    min_scene: float = 2.0
    max_scene: float = 90.0
    detector: str = "combined"  # scoretool.media.scenes.DEFAULT_DETECTOR
    threshold: float | None = None
    frames_per_scene: int = 3
    image_duration: float = 15.0
    crossfade: float = 1.0
    transition: Transition = "crossfade"  # crossfade (beat-aware) | cut | continue
    original_audio: OriginalAudio = "auto"
    music_level: float = -6.0  # dB of the music against the original sound (mix, duck)
    duck_depth: float = 12.0  # dB the music dips under the original's speech (duck)
    duck_other: float = 3.0  # dB the music dips, at most, under the original's other sound (duck)
    fade_in: float = 0.5
    fade_out: float = 2.0
    loudness: float = -14.0
    # None: not given, so a preset's [generation] may set it (else the `Sampling` default). A value,
    # even the default one, was given and wins over the preset.
    guidance_scale: float | None = None
    temperature: float | None = None
    top_k: int | None = None

    def resolved(self, preset: Preset | None = None) -> Settings:
        """Every "not given" (None) filled in: from `preset` where it sets one, else the default.
        Idempotent; what `plan` stores, so the plan names the values that run."""
        wanted = dict(preset.generation) if preset else {}
        if preset and preset.model:
            wanted["music_model"] = preset.model
        defaults = {**asdict(Sampling()), "music_model": DEFAULT_MUSIC_MODEL}
        return replace(self, **{k: wanted.get(k, default) for k, default in defaults.items() if getattr(self, k) is None})

    def sampling(self) -> Sampling:
        """How the music is sampled; the settings must be `resolved`."""
        return Sampling(guidance_scale=self.guidance_scale, temperature=self.temperature, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(f"unknown setting(s) in plan: {', '.join(unknown)}")
        return cls(**data)


@dataclass
class Scene:
    number: int
    start: float
    end: float
    frames: list[float] = field(default_factory=list)
    frame_captions: list[str] = field(default_factory=list)
    caption: str | None = None
    caption_source: str | None = None  # the bridge that wrote `caption` ("anthropic", "offline-fallback"...)
    prompt: str | None = None
    prompt_source: str | None = None  # "anthropic", "local", "offline", "none", "offline-fallback", "user"...;
    # for a scene with no caption, what stood in: "neighbour", "summary" or "default" (fallback_reason says which)
    fallback_reason: str | None = None  # why a bridge step fell back to the offline bridge, or a caption was stood in for
    seed: int | None = None
    preset: str | None = None  # this scene's own style, over the video's

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Plan:
    input: MediaInfo  # what probing found; stored as a JSON object
    settings: Settings
    scenes: list[Scene]
    video_summary: str | None = None
    video_summary_source: str | None = None
    video_summary_fallback_reason: str | None = None
    # The models that ran, by role ("caption", "music"): model, device, precision and why that precision.
    models: dict[str, dict] = field(default_factory=dict)
    version: int = PLAN_VERSION

    @property
    def duration(self) -> float:
        return self.scenes[-1].end if self.scenes else 0.0

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "input": self.input.to_dict(),
            "settings": asdict(self.settings),
            "video_summary": self.video_summary,
            "video_summary_source": self.video_summary_source,
            "video_summary_fallback_reason": self.video_summary_fallback_reason,
            "models": self.models,
            "scenes": [asdict(s) for s in self.scenes],
        }

    def save(self, path: str | os.PathLike) -> None:
        from .files import write_atomic

        data = self.to_dict()
        source = data["input"].get("path")
        if source and not os.path.isabs(source):
            # `load` reads a relative input path from where the plan file is, not from the current folder.
            where = os.path.dirname(os.path.abspath(path))
            data["input"] = {**data["input"], "path": os.path.relpath(os.path.abspath(source), where)}
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        write_atomic(str(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def from_dict(cls, data: dict, base_dir: str | None = None) -> Plan:
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            raise PlanError(f"not a scoretool plan of version {PLAN_VERSION}")
        try:
            scenes = [_scene(i, s) for i, s in enumerate(data["scenes"], start=1)]
            info = MediaInfo.from_dict(check_input(data["input"]))
            if base_dir and not os.path.isabs(info.path):  # relative to where the plan file lives
                info = replace(info, path=os.path.normpath(os.path.join(base_dir, info.path)))
            plan = cls(
                input=info,
                settings=Settings.from_dict(data.get("settings", {})),
                scenes=scenes,
                video_summary=data.get("video_summary"),
                video_summary_source=data.get("video_summary_source"),
                video_summary_fallback_reason=data.get("video_summary_fallback_reason"),
                models=dict(data.get("models") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"malformed plan: {first_line(exc)}") from None
        validate(plan)
        return plan

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlanError(f"plan file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanError(f"cannot read plan {path}: {exc}") from None
        return cls.from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)))


SCENE_FIELDS = frozenset(f.name for f in fields(Scene))


def _scene(i: int, data) -> Scene:
    if not isinstance(data, dict):
        raise PlanError(f"scene {i}: must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - SCENE_FIELDS)
    if unknown:
        raise PlanError(f"scene {i}: unknown field '{str(unknown[0])[:40]}' (known: {', '.join(sorted(SCENE_FIELDS))})")
    missing = sorted({"number", "start", "end"} - set(data))
    if missing:
        raise PlanError(f"scene {i}: {missing[0]} is missing")
    return Scene(**data)


def validate(plan: Plan) -> None:
    """Every setting and scene checked (see `scoretool.validation`): a hand edit that breaks the
    plan gets one line naming the scene and the field, before any model is loaded."""
    check_settings(plan.settings)
    check_scenes(plan)
