"""Writing a timeline export: the timeline file and, beside it, a folder with the media it uses.

`cut.fcpxml` gets `cut_fcpxml_media/` (the mixed music, one WAV per scene); the source video is
referenced where it is, never copied or re-encoded. The export appears whole or not at all: the
media are written into a hidden folder beside the timeline, renamed into place, then the timeline
file is written (atomically) last, so a timeline never points at media that are not there; on any
failure both are taken back and what was there before stays.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..audio.assemble import write_wav
from ..audio.beats import onsets
from ..errors import OutputError
from ..files import first_line, write_atomic
from ..plans import Plan
from ..progress import Reporter
from ..stages.output import mix_music
from .formats import Format, adapters, format_for, write_string
from .layout import lay_out

MARK = ".scoretool-timeline"  # in a media folder: scoretool wrote it, and may replace it


def media_folder(path: str) -> str:
    """The folder of a timeline's media: named after the timeline, extension included (a .xml and
    an .fcpxml of the same name each have their own)."""
    stem, ext = os.path.splitext(os.path.abspath(path))
    return f"{stem}_{ext.lstrip('.').lower()}_media"


def check_timeline_path(path: str) -> Format:
    """Refuse a timeline we could not write, before any work: one line saying why."""
    fmt = format_for(path)
    adapters()
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"Cannot write the timeline {path}: the folder {folder} does not exist.")
    try:  # a real try, not os.access: root passes that for folders the kernel still refuses
        os.rmdir(tempfile.mkdtemp(prefix=".scoretool-probe-", dir=folder))
    except OSError as e:
        raise OutputError(f"Cannot write the timeline {path}: the folder {folder} is not writable ({e.strerror or e}).") from None
    if os.path.isdir(path):
        raise OutputError(f"Cannot write the timeline {path}: it is a folder.")
    media = media_folder(path)
    if os.path.lexists(media) and not os.path.isfile(os.path.join(media, MARK)):
        raise OutputError(f"Cannot write the timeline {path}: {media} is there and scoretool did not write it; move it away.")
    return fmt


def export_timeline(
    plan: Plan, clips: list[np.ndarray], rate: int, path: str, *, beats: bool = False, reporter: Reporter | None = None
) -> list[str]:
    """Write the timeline of a rendered plan (its clips at `rate` Hz) to `path`, format by extension,
    with its media beside it. `beats`: a marker at each of the music's beats. Returns what was written."""
    fmt = check_timeline_path(path)
    reporter = reporter or Reporter()
    with reporter.stage("timeline"):
        music, transitions = mix_music(plan, clips, rate)
        found = [float(t) for t in onsets(music, rate)] if beats else []
        layout = lay_out(plan, clips, rate, music, transitions, found)
        written = _publish(path, fmt, plan, layout)
    reporter.note(f"timeline: {path} for {fmt.editors}; media in {media_folder(path)}")
    return written


def _publish(path: str, fmt: Format, plan: Plan, layout) -> list[str]:
    from .build import Media, build

    final = media_folder(path)
    staging = None
    try:
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(os.path.abspath(path)))
        media = os.path.join(staging, "media")
        names = _write_media(media, layout)
        urls = Media(
            video=Path(plan.input.path).resolve().as_uri(), music=_uri(final, names[0]),
            stems=[_uri(final, n) for n in names[1:]],
        )  # fmt: skip
        timeline = build(layout, plan.input, urls, Path(path).stem, fmt.shape)
        text = _timeline_text(timeline, fmt, layout, path)
        _swap_in(media, final, staging, lambda: write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8")))
    except OSError as e:
        raise OutputError(f"Cannot write the timeline {path}: {e.strerror or e}.") from None
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    return [path] + [os.path.join(final, n) for n in names]


def _write_media(folder: str, layout) -> list[str]:
    """The music first, then one WAV per scene; returns their names."""
    os.mkdir(folder)
    names = ["music.wav"] + [f"scene_{s.number:02d}.wav" for s in layout.stems]
    write_wav(os.path.join(folder, names[0]), layout.music, layout.sample_rate)
    for name, stem in zip(names[1:], layout.stems):
        write_wav(os.path.join(folder, name), stem.samples, layout.sample_rate)
    Path(folder, MARK).write_text("Media of a scoretool timeline export; replaced by the next export of that timeline.\n")
    return names


def _timeline_text(timeline, fmt: Format, layout, path: str) -> str:
    otio = adapters()
    try:
        return write_string(timeline, fmt, layout.rate)
    except otio.exceptions.OTIOError as e:
        raise OutputError(f"Cannot write the timeline {path}: the {fmt.adapter} adapter says {first_line(e)}") from None


def _swap_in(media: str, final: str, staging: str, write_timeline) -> None:
    """Media folder into place (keeping the old one aside), then the timeline; undone on failure."""
    old = os.path.join(staging, "old")
    if os.path.lexists(final):
        os.rename(final, old)
    try:
        os.rename(media, final)
        try:
            write_timeline()
        except BaseException:
            os.rename(final, media)
            raise
    except BaseException:
        if os.path.lexists(old):
            os.rename(old, final)
        raise


def _uri(folder: str, name: str) -> str:
    return Path(folder, name).as_uri()


def export_from_cache(
    plan: Plan, path: str, *, cache, beats: bool = False, reporter: Reporter | None = None
) -> list[str]:
    """`export_timeline` for a plan rendered before: its clips come from the cache (`scoretool
    timeline`). A plan whose clips are not all there is refused in one line, before anything is written."""
    check_timeline_path(path)
    clips, rate = cached_clips(plan, cache)
    return export_timeline(plan, clips, rate, path, beats=beats, reporter=reporter)


def cached_clips(plan: Plan, cache) -> tuple[list[np.ndarray], int]:
    """The plan's clips and their sample rate from the cache, made by the music model its settings
    name, or by the one the plan records as having run (a precision that fell back, another device)."""
    from ..cache import key
    from ..errors import PlanError
    from ..specs import ModelSpec, music_spec
    from ..stages.music import clip_keys

    specs = [music_spec(plan.settings)]
    ran = plan.models.get("music") or {}
    if {"model", "device", "precision"} <= ran.keys():
        specs.append(ModelSpec(ran["model"], ran["device"], ran["precision"]))
    missing = list(plan.scenes)
    for spec in specs:
        clips = [cache.get_array("clip", k) for k in clip_keys(plan, spec)]
        rate = cache.get_json("rate", key("rate", spec.identity()))
        if rate is not None and all(c is not None for c in clips):
            return clips, int(rate)
        missing = [s for s, c in zip(plan.scenes, clips) if c is None] or missing
    numbers = ", ".join(str(s.number) for s in missing)
    raise PlanError(
        f"The music of scene(s) {numbers} is not rendered yet (not in the cache at {cache.root}): "
        "render the plan first (`scoretool render PLAN -o OUT`), with the same --cache-dir."
    )
