"""The `scoretool` command: a thin Click layer over `scoretool.api`."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import replace

import click

from . import api
from .bridge import BRIDGES
from .errors import ScoreToolError
from .models import ALIASES
from .plans import Plan, Settings
from .progress import Reporter, RichReporter

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
        click.option("--bridge", type=click.Choice(BRIDGES), default=DEFAULTS.bridge, show_default=True,
                     help="How captions become music prompts: offline lexicon, or none (captions as they are)."),
        click.option("--caption-model", default=DEFAULTS.caption_model, show_default=True,
                     help="BLIP captioner: alias, Hugging Face id or local folder."),
        click.option("--music-model", default=DEFAULTS.music_model, show_default=True,
                     help="MusicGen model: alias, Hugging Face id or local folder."),
        click.option("--llm-model", help="LLM for the bridge (used by the LLM bridges)."),
        click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Base seed; scene N uses seed+N-1."),
        click.option("--min-scene", type=click.FloatRange(0.5, 60), default=DEFAULTS.min_scene, show_default=True,
                     help="Merge scenes shorter than this many seconds into a neighbour."),
        click.option("--max-scene", type=click.FloatRange(4, 30), default=DEFAULTS.max_scene, show_default=True,
                     help="Split scenes longer than this many seconds (MusicGen's window is 30 s)."),
        click.option("--detector", type=click.Choice(["content", "adaptive"]), default=DEFAULTS.detector, show_default=True,
                     help="PySceneDetect detector."),
        click.option("--threshold", type=float, help="Detector threshold (default: the detector's own)."),
        click.option("--frames", "frames_per_scene", type=click.IntRange(1, 16), default=DEFAULTS.frames_per_scene,
                     show_default=True, help="Frames captioned per scene."),
        click.option("--duration", "image_duration", type=click.FloatRange(1, 300), default=DEFAULTS.image_duration,
                     show_default=True, help="Length in seconds of the music for an image input."),
        click.option("--crossfade", type=click.FloatRange(0, 10), default=DEFAULTS.crossfade, show_default=True,
                     help="Seconds of equal-power crossfade across each cut."),
        click.option("--fade-out", type=click.FloatRange(0, 30), default=DEFAULTS.fade_out, show_default=True,
                     help="Seconds of fade at the end."),
        click.option("--loudness", type=click.FloatRange(-40, -5), default=DEFAULTS.loudness, show_default=True,
                     help="Integrated loudness target in LUFS."),
        click.option("--guidance", "guidance_scale", type=click.FloatRange(1, 20), default=DEFAULTS.guidance_scale,
                     show_default=True, help="MusicGen classifier-free guidance scale."),
        device_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


device_option = click.option("--device", default=DEFAULTS.device, show_default=True, help="auto, cpu, cuda, cuda:1 or mps.")
output_options = [
    click.option("-q", "--quiet", is_flag=True, help="No progress display."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout (output, scenes, prompts, timings)."),
]


def with_output_options(f):
    for option in reversed(output_options):
        f = option(f)
    return f


@contextmanager
def reporting(quiet: bool, as_json: bool):
    """A live progress display when a person is watching, silence otherwise."""
    if quiet or as_json or not sys.stderr.isatty():
        yield Reporter()
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
@analysis_options
@with_output_options
def score(input_path, output, save_plan, quiet, as_json, **options):
    """Score INPUT (a video or an image) and write OUTPUT."""
    settings = replace(DEFAULTS, **options)
    with reporting(quiet, as_json) as reporter:
        result = api.score(input_path, output, settings, save_plan=save_plan, reporter=reporter)
    finish(result, quiet, as_json)


@main.command("plan")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Where to write the plan (JSON).")
@analysis_options
@with_output_options
def plan_command(input_path, output, quiet, as_json, **options):
    """Find scenes, caption them and write music prompts to an editable plan; no music yet."""
    settings = replace(DEFAULTS, **options)
    with reporting(quiet, as_json) as reporter:
        api.check_plan_path(input_path, output)
        the_plan = api.plan(input_path, settings, reporter=reporter)
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
@with_output_options
def render(plan_path, output, device, quiet, as_json):
    """Render a plan written by `scoretool plan` (or `score --save-plan`), honouring your edits."""
    the_plan = Plan.load(plan_path)
    if device:
        the_plan.settings.device = device
    with reporting(quiet, as_json) as reporter:
        result = api.render(the_plan, output, reporter=reporter)
    finish(result, quiet, as_json)


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

    for name in names or (DEFAULTS.caption_model, DEFAULTS.music_model):
        click.echo(f"{name}: {fetch(name)}")


def print_scenes(the_plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{the_plan.input['path']}: {len(the_plan.scenes)} scene(s)", show_lines=True)
    for column in ("#", "start", "end", "caption", "prompt"):
        table.add_column(column, overflow="fold")
    for s in the_plan.scenes:
        table.add_row(str(s.number), f"{s.start:.2f}", f"{s.end:.2f}", s.caption or "", s.prompt or "")
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
