"""The `scoretool` command: a thin Click layer over `scoretool.api`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import replace

import click

from . import api
from typing import get_args

from .bridge import BRIDGES
from .bridge.anthropic_llm import DEFAULT_MODEL as ANTHROPIC_DEFAULT
from .bridge.local_llm import DEFAULT_MODEL as LOCAL_DEFAULT
from .errors import ScoreToolError
from .overrides import gather
from .media.scenes import DETECTORS
from .models import ALIASES
from .plans import DEFAULT_MUSIC_MODEL, OriginalAudio, Plan, Settings, Transition
from .specs import PRECISIONS, Sampling
from .validation import RANGES
from .progress import LineReporter, Reporter, RichReporter

DEFAULTS = Settings()


class Group(click.Group):
    """Turns the library's user-facing errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ScoreToolError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="scoretool")
def main():
    """Give a video a fitting soundtrack.

    scoretool cuts a video into scenes, captions a few frames of each (BLIP), turns the captions
    into a music brief per scene, generates music as long as each scene (MusicGen), crossfades
    the pieces on the cuts and muxes them into the video without re-encoding the picture.

    \b
      scoretool score in.mp4 -o scored.mp4          # the whole job
      scoretool plan in.mp4 -o in.plan.json          # look (and edit) before spending compute
      scoretool render in.plan.json -o scored.mp4   # render a (hand-edited) plan
      scoretool score photo.jpg -o photo.mp4         # a still image with music
    """


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
                     help="PySceneDetect detector."),
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
    from .cache import Cache

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


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output video (.mp4 .mov .m4v .mkv .webm) or music only (.wav).")
@click.option("--save-plan", type=click.Path(), help="Also write the plan here, to edit and re-render later.")
@click.option("--stems", type=click.Path(file_okay=False), help="Also write the music, one WAV per scene and the plan into this folder.")
@analysis_options
@scene_options
@cache_options
@with_output_options
def score(input_path, output, save_plan, stems, scene_specs, overrides_file, cache_dir, no_cache, quiet, as_json, **options):
    """Score INPUT (a video or an image) and write OUTPUT."""
    settings = replace(DEFAULTS, **options)
    with reporting(quiet, as_json) as reporter:
        overrides = gather(input_path, tuple(scene_specs), overrides_file)
        result = api.score(input_path, output, settings, save_plan=save_plan, stems=stems, reporter=reporter,
                           overrides=overrides, cache=open_cache(cache_dir, no_cache))
    finish(result, quiet, as_json)


@main.command("plan")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Where to write the plan (JSON).")
@analysis_options
@scene_options
@cache_options
@with_output_options
def plan_command(input_path, output, scene_specs, overrides_file, cache_dir, no_cache, quiet, as_json, **options):
    """Find scenes, caption them and write music prompts to an editable plan; no music yet."""
    settings = replace(DEFAULTS, **options)
    with reporting(quiet, as_json) as reporter:
        api.check_plan_path(input_path, output)
        overrides = gather(input_path, tuple(scene_specs), overrides_file)
        the_plan = api.plan(input_path, settings, reporter=reporter, overrides=overrides, cache=open_cache(cache_dir, no_cache))
        the_plan.save(output)
    if as_json:
        click.echo(json.dumps(the_plan.to_dict(), indent=2, ensure_ascii=False))
    elif not quiet:
        print_scenes(the_plan)
        click.echo(f"wrote {output}: edit prompts or seeds, then `scoretool render {output} -o OUT`", err=True)


@main.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output video (.mp4 .mov .m4v .mkv .webm) or music only (.wav).")
@click.option("--device", help="Override the plan's device (auto, cpu, cuda, mps).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Override the plan's precision. " + PRECISION_HELP)
@click.option("--stems", type=click.Path(file_okay=False), help="Also write the music, one WAV per scene and the plan into this folder.")
@cache_options
@with_output_options
def render(plan_path, output, device, precision, stems, cache_dir, no_cache, quiet, as_json):
    """Render a plan written by `scoretool plan` (or `score --save-plan`), honouring your edits.

    Scenes whose prompt, seed and length are unchanged come from the cache: editing one scene
    regenerates that scene only.
    """
    the_plan = Plan.load(plan_path)
    if device:
        the_plan.settings.device = device
    if precision:
        the_plan.settings.precision = precision
    with reporting(quiet, as_json) as reporter:
        result = api.render(the_plan, output, reporter=reporter, stems=stems, cache=open_cache(cache_dir, no_cache))
    finish(result, quiet, as_json)


@main.command()
@click.argument("in_dir", metavar="IN_DIR", type=click.Path(file_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the outputs (created if missing); each keeps its path relative to IN_DIR.")
@click.option("-r", "--recursive", is_flag=True, help="Also score the files in subfolders.")
@click.option("--glob", "globs", multiple=True, metavar="PATTERN",
              help="Only files whose path (relative to IN_DIR) or name matches, e.g. '*.mov'; repeatable.")
@click.option("--images", is_flag=True, help="Also score photos (.jpg .png ...): each becomes a video of --duration seconds.")
@click.option("--format", "fmt", type=click.Choice(["same", "mp4", "mkv", "mov", "webm", "wav"]), default="same",
              show_default=True, help="Output container: the input's where it can be written (else .mkv; photos .mp4), "
                                      "or one for all; wav writes the music alone.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64),
              help="Clips in CPU stages (probe, scenes, frames, mix, mux) at once.  [default: CPU cores, at most 4]")
@click.option("--force", is_flag=True, help="Redo every clip, even those done before, whatever settings made them.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Also write the summary (JSON) to this file.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="Run the clips on a Ray cluster (needs scoretool[ray]): HOST:PORT, auto (RAY_ADDRESS or the cluster "
                   "started on this machine; what a bare --ray means) or local (start one in this process). "
                   "Put a bare --ray after IN_DIR.")
@analysis_options
@cache_options
@with_output_options
@click.pass_context
def batch(ctx, in_dir, out_dir, recursive, globs, images, fmt, jobs, force, report_path, ray_address, cache_dir, no_cache,
          quiet, as_json, **options):
    """Score every video in IN_DIR (photos too, with --images) into OUT_DIR.

    Each clip gets the options below, then its own sidecar (clip.scoretool.toml beside it: a
    preset, a prompt, per-scene overrides), as `scoretool score` would give it.

    Resumable: OUT_DIR/.scoretool-batch.json records each clip's state; run the same command
    again after an interruption and finished clips are skipped (their outputs checked against
    their recorded SHA-256), the rest redone. A file that cannot be scored is recorded as failed
    and the batch goes on. Exit status: 0 all scored, 3 some clips failed, 130 interrupted,
    1 the batch could not run.
    """
    import signal

    from . import batch as batch_mod

    batch_mod.check_report_path(report_path)
    if quiet or as_json:
        display = batch_mod.BatchDisplay()
    elif sys.stderr.isatty():
        display = batch_mod.RichBatchDisplay()
    else:
        display = batch_mod.LineDisplay()

    def stop(signum, frame):  # `kill` (SIGTERM) stops like Ctrl-C: the manifest stays consistent either way
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        report = batch_mod.run_batch(
            in_dir, out_dir, replace(DEFAULTS, **options), recursive=recursive, globs=globs, images=images, fmt=fmt,
            jobs=jobs, force=force, ray=ray_address, display=display, cache_dir=cache_dir, use_cache=not no_cache,
        )
    except ScoreToolError as exc:
        if not batch_mod.clips_in_flight():
            raise
        click.echo(f"Error: {exc}", err=True)
        batch_mod.exit_now(batch_mod.EXIT_FATAL)
    finally:
        signal.signal(signal.SIGTERM, previous)
    batch_mod.show_report(report, report_path=report_path, as_json=as_json, quiet=quiet, images=images,
                          recursive=recursive)
    if batch_mod.clips_in_flight():  # interrupted mid-clip: don't let their native code see Python shut down
        batch_mod.exit_now(report.exit_code)
    ctx.exit(report.exit_code)


@main.group(cls=Group, invoke_without_command=True)
@click.pass_context
def models(ctx):
    """List the model aliases; `models fetch` downloads models for offline use."""
    if ctx.invoked_subcommand is None:
        for alias, model_id in ALIASES.items():
            click.echo(f"{alias:24} {model_id}")


@models.command("fetch")
@click.argument("names", nargs=-1)
def models_fetch(names):
    """Download NAMES (aliases or Hugging Face ids; default: the default models) into the cache."""
    from .models import fetch

    for name in names or (DEFAULTS.caption_model, DEFAULT_MUSIC_MODEL):
        click.echo(f"{name}: {fetch(name)}")


presets_dir_option = click.option(
    "--presets-dir", type=click.Path(file_okay=False), help="A folder of your own preset TOML files (default: the user config folder)."
)


@main.group(cls=Group, invoke_without_command=True)
@presets_dir_option
@click.pass_context
def presets(ctx, presets_dir):
    """List the presets (musical styles for --preset and --scene N=PRESET)."""
    from .presets import load_presets

    ctx.obj = load_presets(presets_dir)
    if ctx.invoked_subcommand is None:
        for preset in ctx.obj.values():
            click.echo(f"{preset.name:16} {preset.description}")


@presets.command("show")
@click.argument("name")
@click.pass_obj
def presets_show(found, name):
    """Print one preset: its fields, the prompt words it adds and its file."""
    from .presets import get_preset

    p = get_preset(name, found)
    click.echo(f"{p.name}: {p.description}")
    for label, value in (("genre", p.genre), ("mood", p.mood), ("instruments", ", ".join(p.instruments)),
                         ("tempo", p.tempo), ("bpm", p.bpm), ("extra", p.prompt), ("model", p.model),
                         ("generation", ", ".join(f"{k}={v}" for k, v in p.generation.items()))):
        if value:
            click.echo(f"  {label:12} {value}")
    click.echo(f"  {'prompt words':12} {p.terms()}")
    click.echo(f"  {'file':12} {p.source}")


@main.group(cls=Group)
def cache():
    """The cache of captions, prompts and generated clips that makes re-renders fast."""


cache_dir_option = click.option("--cache-dir", type=click.Path(file_okay=False), help="The cache folder (default: the user cache folder).")


@cache.command("info")
@cache_dir_option
def cache_info(cache_dir):
    """Where the cache is, how many entries of each kind, and its size."""
    from .cache import Cache

    info = Cache(cache_dir).info()
    click.echo(f"{info['path']}: {info['bytes'] / 1e6:.1f} MB")
    for kind, count in sorted(info["entries"].items()):
        click.echo(f"  {kind:8} {count} entries")


@cache.command("clear")
@cache_dir_option
def cache_clear(cache_dir):
    """Delete every cached caption, prompt and clip."""
    from .cache import Cache

    freed = Cache(cache_dir).clear()
    click.echo(f"cleared {freed / 1e6:.1f} MB")


def print_scenes(the_plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{the_plan.input.path}: {len(the_plan.scenes)} scene(s)", show_lines=True)
    for column in ("#", "start", "end", "caption", "prompt", "preset", "from"):
        table.add_column(column, overflow="fold")
    for s in the_plan.scenes:
        table.add_row(str(s.number), f"{s.start:.2f}", f"{s.end:.2f}", s.caption or "", s.prompt or "",
                      s.preset or the_plan.settings.preset or "", s.prompt_source or "")
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
