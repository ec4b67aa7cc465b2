"""The `scoretool` command group; each command lives in a module of this package."""

from __future__ import annotations

import click

from .. import interrupts
from ..errors import ScoreToolError
from ..files import first_line


class Group(click.Group):
    """Turns the library's user-facing errors into one line on stderr and a non-zero exit, and
    Ctrl-C / SIGTERM into one line and 130 / 143 (`scoretool.interrupts`), never Click's "Aborted!"."""

    def main(self, *args, **kwargs):
        interrupts.install()  # again, for an entry that did not come through scoretool.__main__
        return super().main(*args, **kwargs)

    def invoke(self, ctx):
        return interrupts.handled(lambda: self._invoke(ctx))

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ScoreToolError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # reading or writing outside the checked paths (a file vanished...)
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"Cannot access{where}: {exc.strerror or first_line(exc)}.") from None


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
