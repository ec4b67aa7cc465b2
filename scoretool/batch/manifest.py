"""OUT_DIR/.scoretool-batch.json: what a batch was asked for and where each clip stands, plus the
lock that keeps one batch per output folder and the clean-up of what a killed run left behind."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from .. import overrides as overrides_mod
from ..files import write_atomic
from ..plans import Settings
from .clips import BatchError, Clip, inside
from .events import ClipDone, ClipFailed

MANIFEST_NAME = ".scoretool-batch.json"
MANIFEST_FORMAT = "scoretool-batch-manifest"
MANIFEST_VERSION = 1
LOCK_NAME = ".scoretool-batch.lock"
# Outputs are rendered to this hidden name beside their final one, then renamed into place. Files
# left behind by a killed run (ours and write_atomic's "..name.tmp-*") are removed at the next start.
PARTIAL_PREFIX = ".scoretool-partial-"
_LEFTOVER_PREFIXES = (PARTIAL_PREFIX, "." + PARTIAL_PREFIX, "." + os.path.splitext(MANIFEST_NAME)[0] + ".tmp-")
# Settings that change how a clip is computed but never what comes out of it.
_NOT_OUTPUT_SETTINGS = ("device",)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def output_settings(settings: Settings) -> dict:
    """The settings that shape an output (all but the device), as stored in the manifest."""
    data = {k: v for k, v in asdict(settings).items() if k not in _NOT_OUTPUT_SETTINGS}
    return json.loads(json.dumps(data))  # as it reads back from the manifest (tuples become lists...)


def settings_digest(clip: Clip, settings: Settings) -> str:
    """Changes when anything that shapes this clip's output changes: the settings, the clip's
    sidecar (`clip.scoretool.toml`) or a preset either of them names (a user preset file edited)."""
    h = hashlib.sha256(json.dumps(output_settings(settings), sort_keys=True).encode())
    names = {settings.preset}
    with contextlib.suppress(OSError):
        h.update(b"\0sidecar\0" + Path(overrides_mod.sidecar_path(clip.src)).read_bytes())
    with contextlib.suppress(Exception):  # a bad sidecar or preset fails the clip later, with its reason
        sidecar = overrides_mod.gather(clip.src)
        names |= {sidecar.preset} | {o.value for o in sidecar.scenes if o.field == "preset"}
    names.discard(None)
    if names:
        with contextlib.suppress(Exception):
            from ..presets import load_presets

            presets = load_presets(settings.presets_dir)
            for name in sorted(names):
                if name in presets:
                    h.update(json.dumps([name, asdict(presets[name])], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class Manifest:
    """OUT_DIR/.scoretool-batch.json: the batch's settings and each clip's state.

    {"format": "scoretool-batch-manifest", "version": 1, "input_dir": ..., "output_format": "same",
     "settings": {...}, "created": ..., "updated": ...,
     "clips": {"sub/a.mp4": {"state": "pending" | "running" | "done" | "failed", "output": "sub/a.mp4",
                             "attempts": 1, ... done: "sha256", "size", "input_size", "input_mtime_ns",
                             "settings_digest", "scenes", "duration", "seconds", "finished";
                             failed: "error" (one line), "detail" (a traceback, for unexpected errors)}}}

    Written whole, atomically and durably (temp file, fsync, rename) on every change, by one thread only.
    """

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data

    @property
    def clips(self) -> dict[str, dict]:
        return self.data["clips"]

    @classmethod
    def open(cls, out_dir: str, in_dir: str, settings: Settings, fmt: str, force: bool) -> Manifest:
        """The manifest in `out_dir`, or a fresh one. One made otherwise (other settings, another
        version, unreadable) is refused with what differs, or replaced with `force`."""
        path = os.path.join(out_dir, MANIFEST_NAME)
        fresh = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "input_dir": os.path.realpath(in_dir),
            "output_format": fmt, "settings": output_settings(settings), "created": now(), "updated": now(),
            "clips": {},
        }
        if not os.path.exists(path):
            return cls(path, fresh)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("clips"), dict):
                raise ValueError("not a scoretool batch manifest")
        except (OSError, ValueError, AttributeError) as exc:
            if force:
                return cls(path, fresh)
            raise BatchError(f"the batch manifest {path} cannot be read ({exc}): add --force to start the batch afresh") from None
        if data.get("version") != MANIFEST_VERSION:
            if force:
                return cls(path, fresh)
            raise BatchError(f"{path} was written by another version of scoretool: add --force to start the batch afresh")
        changes = differences(data, fresh)
        if changes and force:  # the old records describe outputs made otherwise: forget them
            return cls(path, fresh)
        if changes:
            raise BatchError(
                f"{out_dir} holds a batch made with other settings ({'; '.join(changes)}): rerun with those "
                f"settings to resume it, add --force to redo every clip with these, or choose another output folder"
            )
        return cls(path, data)

    def save(self) -> None:
        self.data["updated"] = now()
        # ASCII-only JSON: file names that are not valid UTF-8 survive the round trip.
        text = json.dumps(self.data, indent=1, sort_keys=False) + "\n"
        write_atomic(self.path, lambda tmp: Path(tmp).write_text(text, encoding="ascii"), fsync=True)

    def verdict(self, clip: Clip, digest: str) -> tuple[bool, str]:
        """(skip?, why): a done clip is skipped only if its output is still there, whole and current."""
        entry = self.clips.get(clip.rel)
        if entry is None:
            return False, "new"
        state = entry.get("state")
        if state != "done":
            return False, {"running": "interrupted", "failed": "failed before"}.get(state, "not started")
        if entry.get("settings_digest") != digest:
            return False, "settings changed"
        try:
            st = os.stat(clip.src)
            if (st.st_size, st.st_mtime_ns) != (entry.get("input_size"), entry.get("input_mtime_ns")):
                return False, "input changed"
        except OSError:
            return False, "input changed"
        out = clip.out
        if entry.get("output") != clip.out_rel or not os.path.isfile(out) or os.path.islink(out):
            return False, "output missing"
        if not inside(os.path.realpath(out), os.path.realpath(clip.out_root)):
            return False, "output missing"
        if file_sha256(out) != entry.get("sha256"):
            return False, "output changed"
        return True, "done before"

    # What each clip's record becomes. The caller saves.

    def mark_pending(self, clip: Clip) -> None:
        attempts = self.clips.get(clip.rel, {}).get("attempts", 0)
        self.clips[clip.rel] = {"state": "pending", "output": clip.out_rel, "attempts": attempts}

    def mark_unusable(self, clip: Clip) -> None:
        """A clip that cannot even start (`clip.error`)."""
        self.clips[clip.rel] = {"state": "failed", "output": clip.out_rel, "error": clip.error, "finished": now()}

    def mark_running(self, clip: Clip) -> None:
        entry = self.clips.setdefault(clip.rel, {})
        entry.update(state="running", started=now(), attempts=entry.get("attempts", 0) + 1)

    def mark_done(self, clip: Clip, done: ClipDone, digest: str, input_stat: tuple[int | None, int | None]) -> None:
        attempts = self.clips.get(clip.rel, {}).get("attempts", 1)
        self.clips[clip.rel] = {
            "state": "done", "output": clip.out_rel, "sha256": done.sha256, "size": done.size,
            "input_size": input_stat[0], "input_mtime_ns": input_stat[1], "settings_digest": digest,
            "scenes": done.scenes, "duration": done.duration, "seconds": done.seconds, "finished": now(),
            "attempts": attempts,
        }

    def mark_failed(self, clip: Clip, failed: ClipFailed) -> None:
        attempts = self.clips.get(clip.rel, {}).get("attempts", 1)
        entry = {"state": "failed", "output": clip.out_rel, "error": failed.error, "finished": now(), "attempts": attempts}
        if failed.detail:
            entry["detail"] = failed.detail
        self.clips[clip.rel] = entry

    def unmark_running(self) -> None:
        """After a fatal error: the clips it cut short are not their fault, so back to pending."""
        for entry in self.clips.values():
            if entry.get("state") == "running":
                entry["state"] = "pending"


def differences(old: dict, new: dict) -> list[str]:
    """What a manifest's input folder, format and settings say that `new` does not."""
    changes = []
    if old.get("input_dir") != new["input_dir"]:
        changes.append(f"input folder {old.get('input_dir')} → {new['input_dir']}")
    if old.get("output_format") != new["output_format"]:
        changes.append(f"--format {old.get('output_format')} → {new['output_format']}")
    before, now_ = old.get("settings") or {}, new["settings"]
    for key in sorted(set(before) | set(now_)):
        if before.get(key) != now_.get(key):
            changes.append(f"{key} {before.get(key)!r} → {now_.get(key)!r}")
    return changes


@contextlib.contextmanager
def locked(out_dir: str):
    """One batch at a time per output folder. The kernel drops the lock when the process dies (kill -9)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    path = os.path.join(out_dir, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise BatchError(f"cannot write in the output folder {out_dir}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError(f"another scoretool batch is writing to {out_dir}: wait for it, or choose another output folder") from None
        yield
    finally:
        os.close(fd)


def remove_leftovers(out_dir: str) -> int:
    """Delete partial files a killed run left in OUT_DIR (never a finished output). Needs the lock."""
    removed = 0
    for folder, _dirs, files in os.walk(out_dir):
        for name in files:
            path = os.path.join(folder, name)
            if name.startswith(_LEFTOVER_PREFIXES) and os.path.isfile(path) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += 1
    return removed
