"""`scoretool batch`: score a folder of videos (and photos), resumably, with shared models.

    clips     which files, and where each output goes (never outside OUT_DIR)
    manifest  OUT_DIR/.scoretool-batch.json, the settings digest, the lock, leftovers of a killed run
    events    what executors report: ClipStarted, ClipFinished (ClipDone | ClipFailed), ClipAborted
    server    the model thread: one loaded model per ModelSpec, requests of several clips in one call
    engine    what a process shares: CPU slots, SharedCaptioner / SharedGenerator, bridges, cache
    scoring   one clip: api.plan + api.render with the engine injected, renamed into place
    local     LocalExecutor (threads of this process); ray: RayExecutor (Ray actors, optional extra)
    display   live view, log lines, summary table; report: BatchReport, exit codes
    run       run_batch: the manifest and the report kept as the events come in
"""

from .clips import FORMATS, VIDEO_EXTENSIONS, BatchError, Clip, find_clips, prepare_output, unsafe_output_reason
from .display import BatchDisplay, LineDisplay, RichBatchDisplay, show_report, summary_table
from .engine import Engine, SharedCaptioner, SharedGenerator
from .events import ClipAborted, ClipDone, ClipEvent, ClipFailed, ClipFinished, ClipResult, ClipStarted
from .local import LocalExecutor, clips_in_flight
from .manifest import MANIFEST_NAME, PARTIAL_PREFIX, Manifest, file_sha256, settings_digest
from .report import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, BatchReport, Row, json_text
from .run import check_report_path, exit_now, run_batch
from .server import Aborted, CpuSlots, Loader, ModelServer, load_model

__all__ = [
    "EXIT_FATAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SOME_FAILED", "FORMATS", "MANIFEST_NAME", "PARTIAL_PREFIX",
    "VIDEO_EXTENSIONS", "Aborted", "BatchDisplay", "BatchError", "BatchReport", "Clip", "ClipAborted", "ClipDone",
    "ClipEvent", "ClipFailed", "ClipFinished", "ClipResult", "ClipStarted", "CpuSlots", "Engine", "LineDisplay",
    "Loader", "LocalExecutor", "Manifest", "ModelServer", "RichBatchDisplay", "Row", "SharedCaptioner",
    "SharedGenerator", "check_report_path", "clips_in_flight", "exit_now", "file_sha256", "find_clips", "json_text",
    "load_model", "prepare_output", "run_batch", "settings_digest", "show_report", "summary_table",
    "unsafe_output_reason",
]
