"""The OpenTimelineIO timeline of a `Layout`: the tracks, clips, crossfades and markers.

Tracks, in this order: the source video (the original file, referenced), the mixed music, the
stems (each scene's clip at its place, crossfades as OTIO transitions), and the original sound
(the same file's audio) where the input has one. What each file format keeps of this is in
`formats.FORMATS`; the one timeline carries every format's metadata (`fcp_xml` for marker
comments and the audio cross-fade effect, `fcpx` for the stems' notes, `cmx_3600` for the EDL's
comment lines), each adapter reading its own.
"""

from __future__ import annotations

from dataclasses import dataclass
import opentimelineio as otio

from ..media.info import MediaInfo
from .formats import Shape
from .layout import Layout, Stem

RT = otio.opentime.RationalTime
Range = otio.opentime.TimeRange
SCENE_COLOUR = otio.schema.MarkerColor.PURPLE  # FCPX reads red and green as to-do markers
BEAT_COLOUR = otio.schema.MarkerColor.CYAN
# Premiere's equal-power audio transition (our crossfades are equal-power): FCP 7 XML's effect.
CROSS_FADE = {
    "name": "Cross Fade (+3dB)", "effectid": "KGAudioTransCrossFade3dB", "effectcategory": "audiotransition",
    "effecttype": "transition", "mediatype": "audio",
}  # fmt: skip


@dataclass(frozen=True)
class Media:
    """The timeline's files, as URLs where they will be once the export is in place."""

    video: str  # the input file
    music: str
    stems: list[str]


def build(layout: Layout, info: MediaInfo, media: Media, name: str, shape: Shape) -> otio.schema.Timeline:
    rate = float(layout.rate)
    tracks = {"video": _video_track(layout, info, media.video), "music": _music_track(layout, media.music)}
    tracks["stems"] = _stems_track(layout, media.stems)
    if info.has_audio:
        tracks["original"] = _original_track(layout, info, media.video)
    timeline = otio.schema.Timeline(name=name, global_start_time=RT(0, rate))
    timeline.tracks.extend(tracks[t] for t in shape.tracks if t in tracks)
    if shape.scene_markers == "timeline":
        timeline.tracks.markers.extend(_scene_marker(s, RT(s.start, rate), rate) for s in layout.stems)
    elif shape.scene_markers == "video":  # in the clip's own time: the source's frames
        video = tracks["video"][0]
        first = video.source_range.start_time
        video.markers.extend(_scene_marker(s, first + RT(s.start, rate), rate) for s in layout.stems)
    else:
        for stem, clip in zip(layout.stems, _clips(tracks["stems"])):
            clip.markers.append(_scene_marker(stem, RT(stem.source_start, rate), rate))
    return timeline


def _clip(name: str, url: str, available: Range, source: Range, **metadata) -> otio.schema.Clip:
    reference = otio.schema.ExternalReference(target_url=url, available_range=available)
    return otio.schema.Clip(name=name, media_reference=reference, source_range=source, metadata=metadata)


def _source_range(layout: Layout, info: MediaInfo) -> tuple[Range, Range]:
    """(available, used) ranges of the input file, in its own time: the first video frame may
    not be at 0 (a clip cut from a longer one), so neither need be on a frame of the rate."""
    rate = float(layout.rate)
    first = RT.from_seconds(info.start_time or 0.0, rate)
    available = RT.from_seconds(info.duration, rate) if info.duration else RT(layout.duration, rate)
    return Range(first, available), Range(first, RT(layout.duration, rate))


def _video_track(layout: Layout, info: MediaInfo, url: str) -> otio.schema.Track:
    track = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    available, used = _source_range(layout, info)
    track.append(_clip(url.rsplit("/", 1)[-1], url, available, used))
    return track


def _original_track(layout: Layout, info: MediaInfo, url: str) -> otio.schema.Track:
    track = otio.schema.Track(name="Original sound", kind=otio.schema.TrackKind.Audio)
    available, used = _source_range(layout, info)
    track.append(_clip("Original sound", url, available, used))
    return track


def _music_track(layout: Layout, url: str) -> otio.schema.Track:
    rate = float(layout.rate)
    track = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
    available = Range(RT(0, rate), RT(layout.media_frames(layout.music), rate))
    clip = _clip("Music", url, available, Range(RT(0, rate), RT(layout.duration, rate)))
    clip.markers.extend(
        otio.schema.Marker(name="Beat", marked_range=Range(RT(f, rate), RT(0, rate)), color=BEAT_COLOUR) for f in layout.beats
    )  # fmt: skip
    track.append(clip)
    return track


def _stems_track(layout: Layout, urls: list[str]) -> otio.schema.Track:
    """Each scene's clip where its scene is, the crossfades as transitions between them."""
    rate = float(layout.rate)
    track = otio.schema.Track(name="Stems", kind=otio.schema.TrackKind.Audio)
    fades = {f.after: f for f in layout.fades}
    for i, (stem, url) in enumerate(zip(layout.stems, urls)):
        available = Range(RT(0, rate), RT(layout.media_frames(stem.samples), rate))
        source = Range(RT(stem.source_start, rate), RT(stem.duration, rate))
        text = _describe(stem)
        clip = _clip(f"Scene {stem.number}", url, available, source, scoretool=_about(stem), cmx_3600={"comments": [text]})
        clip.media_reference.metadata["fcpx"] = {"note": text}
        track.append(clip)
        if i in fades:
            fade = fades[i]
            track.append(
                otio.schema.Transition(
                    name=CROSS_FADE["name"], transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=RT(fade.before_cut, rate), out_offset=RT(fade.after_cut, rate),
                    metadata={"fcp_xml": {"effect": dict(CROSS_FADE)}},
                )
            )  # fmt: skip
    return track


def _clips(track: otio.schema.Track) -> list[otio.schema.Clip]:
    return [item for item in track if isinstance(item, otio.schema.Clip)]


def _scene_marker(stem: Stem, at: otio.opentime.RationalTime, rate: float) -> otio.schema.Marker:
    text = _describe(stem)
    return otio.schema.Marker(
        name=f"Scene {stem.number}", marked_range=Range(at, RT(0, rate)), color=SCENE_COLOUR, comment=text,
        metadata={"scoretool": _about(stem), "fcp_xml": {"comment": text}},
    )  # fmt: skip


def _describe(stem: Stem) -> str:
    return f"{stem.prompt} (seed {stem.seed})"


def _about(stem: Stem) -> dict:
    return {"scene": stem.number, "prompt": stem.prompt, "seed": stem.seed}
