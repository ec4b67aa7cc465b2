"""`python -m scoretool.testing make-tiny DIR`: write the tiny test models into DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as package_doc
from . import make_tiny


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoretool.testing",
        description=package_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-tiny", help="write tiny random models for tests into DIR")
    make.add_argument("directory", type=Path, metavar="DIR")
    args = parser.parse_args(argv)

    for name, folder in make_tiny(args.directory).items():
        print(f"{name}\t{folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
