"""`python -m scoretool` and the `scoretool` command.

The signal handling is installed before anything heavy is imported (the CLI pulls in the whole
pipeline: half a second or more), so Ctrl-C or SIGTERM at any moment gives one line and 130/143.
"""

from scoretool import interrupts


def main() -> None:
    interrupts.install()
    from scoretool.cli import main as cli

    cli(prog_name="scoretool")


if __name__ == "__main__":
    main()
