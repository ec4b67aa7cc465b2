"""`batch`: a folder of clips."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from ..errors import ScoreToolError
from .app import main
from .options import DEFAULTS, analysis_options, cache_options, with_output_options


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

    from .. import batch as batch_mod

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
