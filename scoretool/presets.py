"""Presets: a named musical style (genre, mood, instruments, tempo, extra words, generation knobs).

Built-ins are TOML files shipped inside the package (`scoretool/presets/`); a user folder
(`--presets-dir`, else the platform's config folder, e.g. ~/.config/scoretool/presets) adds
more or shadows a built-in of the same name. A bad file is refused with its path and field.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ScoreToolError
from .validation import RANGES

log = logging.getLogger("scoretool")


class PresetError(ScoreToolError):
    """A preset file is malformed, or a preset name is unknown."""


# The [generation] settings a preset may set: their kind, and the range every setting has (scoretool.validation).
GENERATION_KEYS = {name: (kind, *RANGES[name]) for name, kind in (("guidance_scale", float), ("temperature", float), ("top_k", int))}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    genre: str
    mood: str
    instruments: tuple[str, ...]
    tempo: str = ""
    bpm: int | None = None
    prompt: str = ""
    model: str | None = None  # a music model alias/id/folder this style wants
    generation: dict = field(default_factory=dict)  # guidance_scale, temperature, top_k
    source: str = ""  # the file it came from

    def terms(self) -> str:
        """The preset as prompt words: what every scene's prompt must carry unless overridden."""
        instruments = ", ".join(self.instruments[:-1]) + f" and {self.instruments[-1]}" if len(self.instruments) > 1 else self.instruments[0]
        tempo = ", ".join(x for x in (self.tempo and f"{self.tempo} tempo", self.bpm and f"{self.bpm} BPM") if x)
        parts = [f"{self.mood} {self.genre}", f"with {instruments}", tempo, self.prompt]
        return ", ".join(p for p in parts if p).replace(", with", " with")


def user_presets_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("scoretool")) / "presets"


class Presets(dict):
    """Preset name → `Preset`, plus the files that could not be read (`broken`: file stem → its
    error). A broken file is an error only for a run that asks for it; others get one warning."""

    def __init__(self):
        super().__init__()
        self.broken: dict[str, PresetError] = {}


_warned: set[str] = set()


def load_presets(user_dir: str | os.PathLike | None = None) -> Presets:
    """Built-ins, then the user folder's presets over them (same name: the user's wins)."""
    presets = Presets()
    builtin = resources.files("scoretool") / "presets"
    for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            preset = parse_preset(entry.read_text(encoding="utf-8"), f"scoretool/presets/{entry.name}")
            presets[preset.name] = preset
    folder = Path(user_dir) if user_dir else user_presets_dir()
    if user_dir and not folder.is_dir():
        raise PresetError(f"presets folder not found: {folder}")
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        try:
            preset = parse_preset(path.read_text(encoding="utf-8"), str(path))
        except (PresetError, OSError, UnicodeDecodeError) as exc:
            error = exc if isinstance(exc, PresetError) else PresetError(f"{path}: cannot be read ({exc})")
            presets.broken[path.stem] = error
            if str(path) not in _warned:
                _warned.add(str(path))
                log.warning("preset file skipped: %s", error)
            continue
        presets[preset.name] = preset
        presets.broken.pop(preset.name, None)
    return presets


def get_preset(name: str, presets: Presets) -> Preset:
    if name in presets:
        return presets[name]
    if name in presets.broken:
        raise presets.broken[name]
    raise PresetError(f"unknown preset '{name}': choose from {', '.join(sorted(presets))} (see `scoretool presets`)")


def check_plan_presets(plan, presets: Presets) -> None:
    """Every preset a plan names exists and reads (one line naming where it is asked for)."""
    names = [("settings", plan.settings.preset)] + [(f"scene {s.number}", s.preset) for s in plan.scenes]
    for where, name in names:
        if name:
            try:
                get_preset(name, presets)
            except PresetError as exc:
                raise PresetError(f"{where}: {exc}") from None


def parse_preset(text: str, source: str) -> Preset:
    """Parse and check one preset file; every problem names the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML ({exc})") from None

    def fail(key: str, why: str):
        raise PresetError(f"{source}: field '{key}' {why}")

    def text_field(key: str, required: bool = True) -> str:
        value = data.get(key, "" if not required else None)
        if value is None:
            fail(key, "is missing")
        if not isinstance(value, str) or (required and not value.strip()):
            fail(key, "must be a non-empty string")
        return value.strip()

    known = {"name", "description", "genre", "mood", "instruments", "tempo", "bpm", "prompt", "model", "generation"}
    for key in data:
        if key not in known:
            fail(key, f"is not a preset field (known: {', '.join(sorted(known))})")
    instruments = data.get("instruments")
    if not isinstance(instruments, list) or not instruments or not all(isinstance(i, str) and i.strip() for i in instruments):
        fail("instruments", "must be a non-empty list of strings")
    bpm = data.get("bpm")
    if bpm is not None and (not isinstance(bpm, int) or isinstance(bpm, bool) or not 30 <= bpm <= 240):
        fail("bpm", "must be a whole number from 30 to 240")
    if "tempo" not in data and bpm is None:
        fail("tempo", "is missing (give tempo words, bpm, or both)")
    generation = data.get("generation", {})
    if not isinstance(generation, dict):
        fail("generation", "must be a table")
    for key, value in generation.items():
        if key not in GENERATION_KEYS:
            fail(f"generation.{key}", f"is not a generation setting (known: {', '.join(GENERATION_KEYS)})")
        kind, low, high = GENERATION_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) or not low <= value <= high:
            fail(f"generation.{key}", f"must be a {kind.__name__} from {low:g} to {high:g}")
    name = text_field("name")
    if not name.replace("-", "").replace("_", "").isalnum():
        fail("name", "may hold only letters, digits, '-' and '_'")
    return Preset(
        name=name,
        description=text_field("description"),
        genre=text_field("genre"),
        mood=text_field("mood"),
        instruments=tuple(i.strip() for i in instruments),
        tempo=text_field("tempo", required=False),
        bpm=bpm,
        prompt=text_field("prompt", required=False),
        model=text_field("model", required=False) or None,
        generation=dict(generation),
        source=source,
    )


def ensure_style(prompt: str, preset: Preset, limit: int = 200) -> str:
    """A scene's prompt must carry its preset: if the bridge dropped the genre, put the preset first."""
    if preset.genre.lower() in prompt.lower():
        return prompt
    from .bridge.base import trim_prompt

    return trim_prompt(f"{preset.terms()}, {prompt}", limit)
