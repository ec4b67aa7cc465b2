"""`score`, `plan` and `render`: the pipeline's commands."""

from __future__ import annotations

import json
from dataclasses import replace

import click

from .. import api
from ..overrides import gather
from ..plans import Plan
from .app import main
from .options import (
    DEFAULTS, PRECISION_HELP, PRECISIONS, analysis_options, cache_options, finish, open_cache, reporting, scene_options,
    with_output_options,
)
from ..timeline.command import timeline_command, timeline_options

main.add_command(timeline_command)


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
@timeline_options
def score(input_path, output, save_plan, stems, scene_specs, overrides_file, cache_dir, no_cache, quiet, as_json,
          timeline, timeline_beats, **options):
    """Score INPUT (a video or an image) and write OUTPUT."""
    settings = replace(DEFAULTS, **options)
    with reporting(quiet, as_json) as reporter:
        overrides = gather(input_path, tuple(scene_specs), overrides_file)
        result = api.score(input_path, output, settings, save_plan=save_plan, stems=stems, reporter=reporter,
                           overrides=overrides, cache=open_cache(cache_dir, no_cache), timeline=timeline,
                           timeline_beats=timeline_beats)
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
@timeline_options
def render(plan_path, output, device, precision, stems, cache_dir, no_cache, quiet, as_json, timeline, timeline_beats):
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
        result = api.render(the_plan, output, reporter=reporter, stems=stems, cache=open_cache(cache_dir, no_cache),
                            timeline=timeline, timeline_beats=timeline_beats)
    finish(result, quiet, as_json)


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
