"""Per-scene overrides: from the command line (`--scene`), a sidecar TOML, or `--overrides FILE`.

    --scene 3=lofi                     scene 3 uses the lofi preset
    --scene 3:prompt="solo piano"      scene 3's prompt, as written
    --scene 3:seed=7                   scene 3's seed
    --scene 00:01:20=suspense          the scene that contains 1 min 20 s

The sidecar beside `in.mp4` is `in.scoretool.toml`:

    preset = "cinematic"               # optional, for the whole video
    prompt = "warm and hopeful"        # optional, for the whole video
    [scenes.2]
    preset = "lofi"
    [scenes."00:01:20"]
    prompt = "solo piano, tender"

Scenes are numbered from 1, as `scoretool plan` prints them. Precedence, strongest first:
plan edit > per-scene override (command line over sidecar) > global option > preset > default.
Everything is checked against the scenes and the presets before any model is loaded.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ScoreToolError
from .validation import MAX_SEED

if TYPE_CHECKING:
    from .presets import Presets

FIELDS = ("preset", "prompt", "seed")
_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


class OverrideError(ScoreToolError):
    """A malformed override, or one naming a scene or preset that does not exist."""


@dataclass
class Override:
    """One `selector field=value`: the selector is a scene number or a time in seconds."""

    scene: int | None
    time: float | None
    field: str
    value: str | int
    origin: str  # where it was written, for error messages

    def describe(self) -> str:
        return f"{self.origin}: " + (f"scene {self.scene}" if self.scene is not None else f"time {self.time:g} s")


@dataclass
class Overrides:
    """All overrides of a run: global ones from a sidecar, then per-scene ones, weakest first."""

    preset: str | None = None
    prompt: str | None = None
    scenes: list[Override] = field(default_factory=list)


def parse_time(text: str) -> float | None:
    """`HH:MM:SS`, `MM:SS` (seconds may have decimals) → seconds; None if it isn't a time."""
    m = _TIME.match(text.strip())
    if not m:
        return None
    hours, minutes, seconds = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
    return hours * 3600 + minutes * 60 + seconds


def _override(selector: str, field_name: str, value, origin: str) -> Override:
    selector = selector.strip()
    if field_name not in FIELDS:
        raise OverrideError(f"{origin}: unknown field '{field_name}' (use one of {', '.join(FIELDS)})")
    if field_name == "seed":
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise OverrideError(f"{origin}: seed must be a whole number, not '{str(value)[:40]}'") from None
        if not 0 <= value <= MAX_SEED:
            raise OverrideError(f"{origin}: seed ({value}) must be from 0 to 2**63-1")
    elif not isinstance(value, str) or not value.strip():
        raise OverrideError(f"{origin}: {field_name} must be a non-empty string")
    else:
        value = value.strip()
    if selector.isdigit():
        return Override(int(selector), None, field_name, value, origin)
    seconds = parse_time(selector)
    if seconds is None:
        raise OverrideError(f"{origin}: '{selector}' is neither a scene number (1, 2, ...) nor a time (HH:MM:SS or MM:SS)")
    return Override(None, seconds, field_name, value, origin)


def parse_scene_option(spec: str) -> Override:
    """One `--scene` value: `N=PRESET`, `N:FIELD=VALUE`, or a time in place of N."""
    origin = f"--scene {spec}"
    if "=" not in spec:
        raise OverrideError(f"{origin}: expected N=PRESET or N:FIELD=VALUE, e.g. 3=lofi or 3:prompt=\"solo piano\"")
    left, value = spec.split("=", 1)
    for name in FIELDS:
        if left.endswith(f":{name}"):
            return _override(left[: -len(name) - 1], name, value.strip().strip('"').strip("'"), origin)
    return _override(left, "preset", value, origin)


def sidecar_path(video: str) -> str:
    """`clips/in.mp4` → `clips/in.scoretool.toml`."""
    return os.path.splitext(video)[0] + ".scoretool.toml"


def load_overrides_file(path: str) -> Overrides:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise OverrideError(f"overrides file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OverrideError(f"{path}: cannot read overrides ({exc})") from None
    unknown = set(data) - {"preset", "prompt", "scenes"}
    if unknown:
        raise OverrideError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (use preset, prompt and [scenes.N])")
    result = Overrides(preset=data.get("preset"), prompt=data.get("prompt"))
    scenes = data.get("scenes", {})
    if not isinstance(scenes, dict):
        raise OverrideError(f"{path}: 'scenes' must be tables like [scenes.2]")
    for selector, table in scenes.items():
        if not isinstance(table, dict):
            raise OverrideError(f"{path}: [scenes.{selector}] must be a table of preset/prompt/seed")
        for name, value in table.items():
            result.scenes.append(_override(str(selector), name, value, f"{path} [scenes.{selector}]"))
    return result


def gather(video: str, scene_options: tuple[str, ...] = (), overrides_file: str | None = None) -> Overrides:
    """The sidecar (or `--overrides FILE`), then `--scene` options on top."""
    path = overrides_file or (sidecar_path(video) if os.path.isfile(sidecar_path(video)) else None)
    result = load_overrides_file(path) if path else Overrides()
    result.scenes += [parse_scene_option(spec) for spec in scene_options]
    return result


def scene_for(override: Override, bounds: list[tuple[float, float]]) -> int:
    """The 1-based scene an override addresses, or a clear error listing what exists."""
    n = len(bounds)
    if override.scene is not None:
        if not 1 <= override.scene <= n:
            raise OverrideError(f"{override.describe()}: there is no scene {override.scene}; this video has scenes 1 to {n}")
        return override.scene
    end = bounds[-1][1]
    for i, (start, stop) in enumerate(bounds, start=1):
        if start <= override.time < stop:
            return i
    raise OverrideError(f"{override.describe()}: past the end of the video ({end:.2f} s)")


def apply(scenes, overrides: Overrides, presets: Presets) -> None:
    """Set each addressed scene's preset, prompt or seed; later overrides win over earlier ones.

    A prompt given here is the user's own: the bridge never rewrites it (`prompt_source` "user").
    """
    from .presets import get_preset

    bounds = [(s.start, s.end) for s in scenes]
    for override in overrides.scenes:
        scene = scenes[scene_for(override, bounds) - 1]
        if override.field == "preset":
            try:
                get_preset(override.value, presets)
            except ScoreToolError as exc:
                raise OverrideError(f"{override.describe()}: {exc}") from None
            scene.preset = override.value
        elif override.field == "prompt":
            scene.prompt, scene.prompt_source = override.value, "user"
        else:
            scene.seed = override.value
