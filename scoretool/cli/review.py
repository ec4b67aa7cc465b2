"""`scoretool review`: the plan in the browser (needs the `review` extra: Starlette and uvicorn)."""

from __future__ import annotations

import os
from dataclasses import replace

import click

from .. import api
from ..errors import ScoreToolError
from ..media.mux import OUTPUT_KINDS
from ..overrides import gather
from ..plans import Plan
from .app import main
from .options import DEFAULTS, analysis_options, cache_options, open_cache, reporting, scene_options


@main.command()
@click.argument("source", metavar="INPUT|PLAN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The scored video the page renders (default: beside the plan, PLAN's name with .scored).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False),
              help="For an INPUT: the plan to review, made first if it is not there (default: INPUT's name .plan.json).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default="a free one", help="Port on 127.0.0.1.")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@click.option("--no-render", is_flag=True, help="Do not render when the page opens (press Render in it).")
@analysis_options
@scene_options
@cache_options
def review(source, output, plan_path, port, no_browser, no_render, scene_specs, overrides_file, cache_dir, no_cache, **options):
    """Review and edit a plan in the browser: scenes, frames, captions, prompts, presets, seeds;
    render what changed, listen, undo, export.

    \b
    INPUT (a video or an image) is planned first, with the options given, unless its plan is
    there already; a PLAN (.json) is reviewed as it is. Edits are saved to the plan file, so
    `scoretool render PLAN` makes the same. The page is served on 127.0.0.1 only, at a URL with a
    random token; Ctrl-C stops it.
    """
    try:
        from ..review.server import serve
        from ..review.session import Session
    except ImportError as exc:
        raise ScoreToolError(f"scoretool review needs `pip install 'scoretool[review]'` ({exc.name} is missing)") from None
    if source.lower().endswith(".json"):
        plan_path = source
    else:
        plan_path = plan_path or os.path.splitext(source)[0] + ".plan.json"
        _plan_if_needed(source, plan_path, scene_specs, overrides_file, cache_dir, no_cache, options)
    session = Session(plan_path, output or default_output(plan_path), cache_dir=cache_dir, use_cache=not no_cache)
    serve(session, port=port, open_browser=not no_browser, render=not no_render, echo=lambda m: click.echo(m, err=True))


def _plan_if_needed(source, plan_path, scene_specs, overrides_file, cache_dir, no_cache, options) -> None:
    if os.path.isfile(plan_path):
        planned = Plan.load(plan_path).input.path
        if not (os.path.exists(source) and os.path.exists(planned) and os.path.samefile(planned, source)):
            raise ScoreToolError(f"{plan_path} is the plan of {planned}, not of {source}: give another --plan")
        click.echo(f"reviewing the plan there already, {plan_path} (delete it, or give --plan, to plan again)", err=True)
        return
    api.check_plan_path(source, plan_path)
    with reporting(False, False) as reporter:
        overrides = gather(source, tuple(scene_specs), overrides_file)
        the_plan = api.plan(source, replace(DEFAULTS, **options), reporter=reporter, overrides=overrides,
                            cache=open_cache(cache_dir, no_cache))  # fmt: skip
        the_plan.save(plan_path)


def default_output(plan_path: str) -> str:
    """in.plan.json → in.scored.mp4 beside it (the input's container where it is a video one)."""
    stem = os.path.splitext(plan_path)[0]
    stem = stem[: -len(".plan")] if stem.endswith(".plan") else stem
    ext = os.path.splitext(Plan.load(plan_path).input.path)[1].lower()
    return f"{stem}.scored{ext if ext in OUTPUT_KINDS['video'] else '.mp4'}"
