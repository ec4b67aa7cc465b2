"""A batch's outcome: one row per clip, the totals, the exit code, and the model calls made."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import write_atomic
from .manifest import MANIFEST_NAME

# Exit codes of `scoretool batch`.
EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass
class Row:
    """One line of the summary table and the report."""

    clip: str
    output: str
    status: str  # "done" (scored now), "skipped" (done before, output intact), "failed", "pending" (interrupted)
    reason: str = ""  # why it was (re)done or skipped: new, interrupted, failed before, output changed...
    scenes: int | None = None
    duration: float | None = None
    seconds: float | None = None
    error: str | None = None


@dataclass
class BatchReport:
    input_dir: str
    output_dir: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    ray: str | None = None
    model_calls: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, clips, items) per call

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.rows)
        return {k: counts.get(k, 0) for k in ("done", "skipped", "failed", "pending")}

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if self.counts["failed"] else EXIT_OK

    def to_dict(self) -> dict:
        return {
            "input_dir": self.input_dir,
            "output_dir": self.output_dir,
            "manifest": os.path.join(self.output_dir, MANIFEST_NAME),
            "ray": self.ray,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
            "totals": {"clips": len(self.rows), **self.counts},
            "exit_code": self.exit_code,
            "clips": [asdict(r) for r in self.rows],
            # How the model work was batched: one entry per model call, "clips" requests gathered into it.
            "model_calls": [{"kind": k, "clips": n, "items": items} for k, n, items in self.model_calls],
        }

    def write(self, path: str) -> None:
        text = json_text(self.to_dict())
        write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def json_text(data) -> str:
    """Readable JSON (non-ASCII kept) unless a name is not valid UTF-8; then escaped."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2) + "\n"
    return text
