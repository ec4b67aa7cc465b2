"""The timeline file formats: which OpenTimelineIO adapter writes each, and what each keeps.

Every format is written by an OTIO adapter (`opentimelineio`'s own for .otio, and OTIO's maintained
`otio-fcp-adapter`, `otio-fcpx-xml-adapter`, `otio-cmx3600-adapter`); nothing here writes XML.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ..errors import OutputError
ALL_TRACKS = ("video", "music", "stems", "original")


@dataclass(frozen=True)
class Shape:
    """What a format's adapter can take: which tracks, and where scene markers can go."""

    tracks: tuple[str, ...]  # of "video", "music", "stems", "original"; the first is what an EDL writes
    scene_markers: Literal["timeline", "video", "stems"]


@dataclass(frozen=True)
class Format:
    adapter: str  # the OTIO adapter's name
    package: str  # the PyPI package that provides it
    editors: str
    shape: Shape
    loses: str  # what this format cannot carry, for the docs and the export's note


FORMATS: dict[str, Format] = {
    ".otio": Format(
        "otio_json", "opentimelineio", "DaVinci Resolve (18.5+), OTIO tools", Shape(ALL_TRACKS, "timeline"),
        "nothing: every track, the crossfades as transitions, the markers with prompt and seed",
    ),
    ".fcpxml": Format(
        "fcpx_xml", "otio-fcpx-xml-adapter", "Final Cut Pro, DaVinci Resolve", Shape(ALL_TRACKS, "video"),
        "the crossfades (stems butt at the cuts; each WAV keeps the overlap as handles to drag out); "
        "markers are names only (each stem's prompt and seed are in its browser clip's note)",
    ),
    ".xml": Format(
        "fcp_xml", "otio-fcp-adapter", "Premiere Pro, DaVinci Resolve (Final Cut 7 XML)", Shape(ALL_TRACKS, "timeline"),
        "where the mix moved a crossfade onto a beat, its cut point moves to the crossfade's middle (FCP 7 "
        "transitions are centred; the sound is the same); times below a frame",
    ),
    ".edl": Format(
        "cmx_3600", "otio-cmx3600-adapter", "any editor (CMX 3600)", Shape(("stems", "video"), "stems"),
        "everything but the stems: an EDL is one track, so it lists the stems (crossfades as dissolves, "
        "scene markers as LOC lines, prompt and seed as comments); no video, music or original sound, "
        "no beat markers, marker names upper-cased",
    ),
}


def format_for(path: str) -> Format:
    """The format of a timeline path, by its extension; else one line naming the valid ones."""
    import os

    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        valid = ", ".join(f"{e} ({f.editors})" for e, f in FORMATS.items())
        raise OutputError(f"Unknown timeline format {ext or '(no extension)'!r} for {path}: use one of {valid}.")
    return FORMATS[ext]


def adapters():
    """`opentimelineio`, once each adapter it needs is installed; else one line saying what to install."""
    try:
        import opentimelineio as otio
    except ImportError:
        raise OutputError("Timeline export needs OpenTimelineIO: pip install 'scoretool[timeline]'.") from None
    names = set(otio.adapters.available_adapter_names())
    missing = [f.package for f in FORMATS.values() if f.adapter not in names]
    if missing:
        raise OutputError(f"Timeline export needs {', '.join(missing)}: pip install 'scoretool[timeline]'.")
    return otio


def write_string(timeline, fmt: Format, rate: Fraction) -> str:
    otio = adapters()
    with exact_rates(fmt.adapter, rate):
        if fmt.adapter == "cmx_3600":
            return otio.adapters.write_to_string(timeline, fmt.adapter, rate=float(rate), style="premiere")
        return otio.adapters.write_to_string(timeline, fmt.adapter)


def read_file(path: str, rate: Fraction):
    """Read a timeline back (the tests' round trip), with the same rate fixes as writing."""
    otio = adapters()
    fmt = format_for(path)
    with exact_rates(fmt.adapter, rate):
        if fmt.adapter == "cmx_3600":
            return otio.adapters.read_from_file(path, fmt.adapter, rate=float(rate))
        return otio.adapters.read_from_file(path, fmt.adapter)


_PATCHING = threading.Lock()


@contextlib.contextmanager
def exact_rates(adapter: str, rate: Fraction):
    """The FCPXML adapter knows eight frame rates and truncates every rate to a whole number of
    frames a second (29.97 becomes 29: anchored clips land up to two frames early, and reading back
    is 3 % off). For the length of one write or read it is given the timeline's exact rate."""
    if adapter != "fcpx_xml":
        yield
        return
    import opentimelineio as otio

    module = otio.adapters.from_name("fcpx_xml").module()
    writer, reader = module.FcpxOtio, module.FcpxXml
    duration = f"{rate.denominator}/{rate.numerator}s"  # one frame, as FCPXML writes it

    def to_rational_time(value, fps):  # the module's own truncates to whole frames at int(fps)
        seconds = Fraction(value[:-1]) if value and value != "0s" else Fraction(0)
        return otio.opentime.RationalTime.from_seconds(float(seconds), fps)

    def format_rate(self, format_id):  # the reader's own is int(30000 / 1001)
        numerator, denominator = self._format_frame_duration(format_id)  # of one frame's duration
        return float(Fraction(denominator) / Fraction(numerator))

    patches = [
        (module, "to_rational_time", to_rational_time),
        (writer, "_framerate_to_frame_duration", staticmethod(lambda fps: duration)),  # the timeline's one rate
        (writer, "_frame_rate_from_element", lambda self, element, default_format_id: float(rate)),
        (reader, "_format_frame_rate", format_rate),
    ]
    with _PATCHING:
        saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
        try:
            for owner, name, value in patches:
                setattr(owner, name, value)
            yield
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)
