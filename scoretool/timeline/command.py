"""The command line of timeline export: `--timeline FILE` (and `--timeline-beats`) for `score` and
`render`, and `scoretool timeline PLAN -o FILE` for a plan rendered before.

Kept apart from the CLI's own modules, which register these: `main.add_command(timeline_command)`,
and `@timeline_options` on `score` and `render`, whose functions then take `timeline` and
`timeline_beats` and pass them to `api.score` / `api.render`.
"""

from __future__ import annotations

import json

import click

from .formats import FORMATS

FORMATS_HELP = ", ".join(f"{ext} ({fmt.editors})" for ext, fmt in FORMATS.items())


def timeline_options(f):
    """`--timeline FILE` and `--timeline-beats`, for `score` and `render`."""
    f = click.option("--timeline-beats", is_flag=True, help="Mark each beat of the music on the timeline too.")(f)
    return click.option(
        "--timeline", type=click.Path(dir_okay=False), metavar="FILE",
        help=f"Also write an editor's timeline of the score, format by extension: {FORMATS_HELP}. "
        "Its media go into a folder beside it named after it.",
    )(f)  # fmt: skip


@click.command("timeline")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help=f"The timeline to write, format by extension: {FORMATS_HELP}.")  # fmt: skip
@click.option("--beats", is_flag=True, help="Mark each beat of the music too.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="The cache the plan was rendered with (default: the user cache folder).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
def timeline_command(plan_path, output, beats, cache_dir, as_json):
    """Write an editor's timeline of PLAN, rendered before (its music comes from the cache).

    \b
    The timeline has the source video (referenced, not copied), the mixed music, each scene's
    music on a stems track with its crossfade, the original sound, and a marker at every scene
    (with its prompt and seed). Its media are written into FILE's folder, named after FILE.
    """
    from ..cache import Cache
    from ..plans import Plan
    from ..presets import get_preset, load_presets
    from .export import export_from_cache

    the_plan = Plan.load(plan_path)
    settings = the_plan.settings
    preset = get_preset(settings.preset, load_presets(settings.presets_dir)) if settings.preset else None
    the_plan.settings = settings.resolved(preset)  # a hand-made plan may leave some unset
    written = export_from_cache(the_plan, output, cache=Cache(cache_dir), beats=beats)
    if as_json:
        click.echo(json.dumps({"timeline": written[0], "media": written[1:]}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"wrote {written[0]} and {len(written) - 1} media file(s) beside it", err=True)
