"""The `scoretool` command group; each command lives in a module of this package."""

from __future__ import annotations

import click

from ..errors import ScoreToolError


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
