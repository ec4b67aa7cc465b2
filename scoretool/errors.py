"""Errors a user can act on. The CLI prints their message as one line, without a traceback."""


class ScoreToolError(Exception):
    """Base class: the message is a complete, user-facing sentence."""

    exit_code = 1


class InputError(ScoreToolError):
    """The input file is missing, unreadable, or not something we can score."""


class OutputError(ScoreToolError):
    """The output path cannot be written (same as input, folder not writable, wrong container)."""


class ModelUnavailable(ScoreToolError):
    """A model is neither a local folder nor in the Hugging Face cache, and the hub can't be reached."""


class PlanError(ScoreToolError):
    """A plan file is malformed or refers to something that is not there."""
