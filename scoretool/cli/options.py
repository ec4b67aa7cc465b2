"""Options and output handling shared by the commands."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import get_args

import click

from .. import api
from ..bridge import BRIDGES
from ..bridge.anthropic_llm import DEFAULT_MODEL as ANTHROPIC_DEFAULT
from ..bridge.local_llm import DEFAULT_MODEL as LOCAL_DEFAULT
from ..media.scenes import DETECTORS
from ..plans import DEFAULT_MUSIC_MODEL, OriginalAudio, Settings, Transition
from ..progress import LineReporter, Reporter, RichReporter
from ..specs import PRECISIONS, Sampling
from ..validation import RANGES

DEFAULTS = Settings()


def analysis_options(f):
    """Options that shape the plan: shared by `score` and `plan`."""
    options = [
        click.option("--prompt", help="Your own brief for the music; it wins where it conflicts with the pictures."),
        click.option("--preset", help="A style for the whole video (see `scoretool presets`); scenes may override it."),
        click.option("--presets-dir", type=click.Path(file_okay=False), help="A folder of your own preset TOML files."),
        click.option("--bridge", type=click.Choice(BRIDGES), default=DEFAULTS.bridge, show_default=True,
                     help="How captions become music prompts: anthropic (Claude; needs ANTHROPIC_API_KEY), "
                          "local (a transformers chat model, see --llm-model), offline (a built-in lexicon, no "
                          "network), none (captions as they are). auto: anthropic if ANTHROPIC_API_KEY is set, "
                          "else offline."),
        click.option("--caption-model", default=DEFAULTS.caption_model, show_default=True,
                     help="BLIP captioner: alias, Hugging Face id or local folder."),
        click.option("--music-model", show_default=f"{DEFAULT_MUSIC_MODEL}, or the preset's",
                     help="MusicGen model: alias, Hugging Face id or local folder."),
        click.option("--llm-model", help="The bridge's LLM: an Anthropic model id for --bridge anthropic (default "
                                       f"{ANTHROPIC_DEFAULT}), or a Hugging Face id or folder of a chat model for "
                                       f"--bridge local (default {LOCAL_DEFAULT})."),
        click.option("--seed", type=click.IntRange(*RANGES["seed"]), default=DEFAULTS.seed, show_default=True, help="Base seed; scene N uses seed+N-1."),
        click.option("--min-scene", type=click.FloatRange(*RANGES["min_scene"]), default=DEFAULTS.min_scene, show_default=True,
                     help="Merge scenes shorter than this many seconds into a neighbour."),
        click.option("--max-scene", type=click.FloatRange(*RANGES["max_scene"]), default=DEFAULTS.max_scene, show_default=True,
                     help="Split scenes longer than this many seconds. Music past MusicGen's 30 s window is "
                          "generated in windows, each hearing the last 10 s of the one before."),
        click.option("--detector", type=click.Choice(list(DETECTORS)), default=DEFAULTS.detector, show_default=True,
                     help="Scene detector: combined (cuts, dissolves, fades) or one of PySceneDetect's."),
        click.option("--threshold", type=float, help="Detector threshold (default: the detector's own)."),
        click.option("--frames", "frames_per_scene", type=click.IntRange(*RANGES["frames_per_scene"]), default=DEFAULTS.frames_per_scene,
                     show_default=True, help="Frames captioned per scene."),
        click.option("--duration", "image_duration", type=click.FloatRange(*RANGES["image_duration"]), default=DEFAULTS.image_duration,
                     show_default=True, help="Length in seconds of the music for an image input."),
        click.option("--crossfade", type=click.FloatRange(*RANGES["crossfade"]), default=DEFAULTS.crossfade, show_default=True,
                     help="Seconds of equal-power crossfade across each cut."),
        click.option("--transition", type=click.Choice(get_args(Transition)), default=DEFAULTS.transition,
                     show_default=True,
                     help="crossfade: equal-power, moved onto the outgoing music's beat near the cut; cut: a hard "
                          "change; continue: each scene's music carries on from the previous scene's (flows best, "
                          "but scenes are generated one after another: slower)."),
        click.option("--original-audio", type=click.Choice(get_args(OriginalAudio)), default=DEFAULTS.original_audio,
                     show_default=True, help="The input's own sound: auto ducks under it when there is one, else replace."),
        click.option("--music-level", type=click.FloatRange(*RANGES["music_level"]), default=DEFAULTS.music_level, show_default=True,
                     help="dB of the music against the original sound (mix, duck)."),
        click.option("--duck-depth", type=click.FloatRange(*RANGES["duck_depth"]), default=DEFAULTS.duck_depth, show_default=True,
                     help="dB the music dips under the original's speech (duck)."),
        click.option("--duck-other", type=click.FloatRange(*RANGES["duck_other"]), default=DEFAULTS.duck_other, show_default=True,
                     help="dB the music dips, at most, under the original's other sound: effects, ambience, music (duck)."),
        click.option("--fade-out", type=click.FloatRange(*RANGES["fade_out"]), default=DEFAULTS.fade_out, show_default=True,
                     help="Seconds of fade at the end."),
        click.option("--loudness", type=click.FloatRange(*RANGES["loudness"]), default=DEFAULTS.loudness, show_default=True,
                     help="Integrated loudness target in LUFS."),
        click.option("--guidance", "guidance_scale", type=click.FloatRange(*RANGES["guidance_scale"]),
                     show_default=f"{Sampling().guidance_scale}, or the preset's",
                     help="MusicGen classifier-free guidance scale. Given, it wins over the preset's, even at the default."),
        device_option,
        precision_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


device_option = click.option("--device", default=DEFAULTS.device, show_default=True, help="auto, cpu, cuda, cuda:1 or mps.")
PRECISION_HELP = ("Precision of the captioner and the music model. auto: the fastest this machine runs well (on a CPU "
                  "int8 or bf16 where its kernels are fast; fp16 on CUDA); fp32: the reference. The plan and "
                  "--json say which ran and why.")
precision_option = click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULTS.precision,
                                show_default=True, help=PRECISION_HELP)
output_options = [
    click.option("-q", "--quiet", is_flag=True, help="No progress display."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout (output, scenes, prompts, timings)."),
]


def scene_options(f):
    """Per-scene overrides: on the command line, and from a sidecar or overrides file."""
    f = click.option("--overrides", "overrides_file", type=click.Path(dir_okay=False),
                     help="A TOML file of overrides (default: IN.scoretool.toml beside the input, if there is one).")(f)
    return click.option("--scene", "scene_specs", multiple=True, metavar="SPEC",
                        help="Override one scene: N=PRESET, N:prompt=TEXT, N:seed=S; N is the scene number (from 1) "
                             "or a time in it (HH:MM:SS). Repeatable.")(f)


def cache_options(f):
    f = click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")(f)
    return click.option("--cache-dir", type=click.Path(file_okay=False),
                        help="Where captions, prompts and clips are cached (default: the user cache folder).")(f)


def open_cache(cache_dir, no_cache):
    from ..cache import Cache

    return Cache(cache_dir, enabled=not no_cache)


def with_output_options(f):
    for option in reversed(output_options):
        f = option(f)
    return f


@contextmanager
def reporting(quiet: bool, as_json: bool):
    """A live progress display when a person is watching, silence otherwise."""
    if quiet or as_json:
        yield Reporter()
        return
    if not sys.stderr.isatty():
        reporter = LineReporter()
        yield reporter
        reporter.close()  # not reached on an error
        return
    reporter = RichReporter()
    try:
        yield reporter
    finally:
        reporter.close()


def finish(result: api.Result, quiet: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2, ensure_ascii=False))
    elif not quiet:
        click.echo(f"wrote {result.output} ({len(result.plan.scenes)} scene(s), {result.plan.duration:.2f} s)", err=True)
