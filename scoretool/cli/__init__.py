"""The `scoretool` command: a thin Click layer over `scoretool.api` (and `scoretool.batch`)."""

from .app import main
from . import batch, manage, review, run  # noqa: F401 - each registers its commands on `main`

__all__ = ["main"]
