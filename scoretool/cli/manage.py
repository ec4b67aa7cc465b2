"""`models`, `presets` and `cache`: what scoretool has to work with."""

from __future__ import annotations

import click

from ..models import ALIASES
from ..plans import DEFAULT_MUSIC_MODEL
from .app import Group, main
from .options import DEFAULTS


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
    from ..models import fetch

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
    from ..presets import load_presets

    ctx.obj = load_presets(presets_dir)
    if ctx.invoked_subcommand is None:
        for preset in ctx.obj.values():
            click.echo(f"{preset.name:16} {preset.description}")


@presets.command("show")
@click.argument("name")
@click.pass_obj
def presets_show(found, name):
    """Print one preset: its fields, the prompt words it adds and its file."""
    from ..presets import get_preset

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
    """The cache of captions, prompts and generated clips that makes re-renders fast, and (in the
    default folder, or $SCORETOOL_CACHE_DIR) the int8 weights that make the next load fast."""


cache_dir_option = click.option("--cache-dir", type=click.Path(file_okay=False), help="The cache folder (default: the user cache folder).")


@cache.command("info")
@cache_dir_option
def cache_info(cache_dir):
    """Where the cache is, how many entries of each kind, and its size."""
    from ..cache import Cache

    info = Cache(cache_dir).info()
    click.echo(f"{info['path']}: {info['bytes'] / 1e6:.1f} MB")
    for kind, count in sorted(info["entries"].items()):
        click.echo(f"  {kind:8} {count} entries")


@cache.command("clear")
@cache_dir_option
def cache_clear(cache_dir):
    """Delete every cached caption, prompt and clip (and int8 weights, in the default folder)."""
    from ..cache import Cache

    freed = Cache(cache_dir).clear()
    click.echo(f"cleared {freed / 1e6:.1f} MB")
