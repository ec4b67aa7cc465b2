"""`scoretool batch`: score every video (and photo) in a folder, resumably, loading the models once.

    find clips ─► manifest (skip what is done and intact) ─► per clip, in worker threads:
        probe, scenes, frames (CPU) ─► captions* ─► bridge ─► music* ─► mix, mux (CPU) ─► rename ─► "done"
    * run by one model thread that owns the models and batches the requests of several clips into
      one captioner / one MusicGen call (a clip's music depends only on its prompts and seeds, not on
      its batch-mates, so batching changes nothing but the speed).

At most `jobs` threads do CPU work at once; a clip waiting for the model thread gives its CPU slot to
the next clip, so probing and scene detection of the next clips overlap the model work for the
current ones, and a clip whose music is ready goes ahead of clips not yet started.

Each clip is `api.plan` + `api.render` with the shared captioner, bridge and generator injected:
the batch runs exactly the pipeline `scoretool score` runs. Every output is rendered to a hidden
partial file beside its final name and renamed into place; only then is "done" (with the output's
SHA-256) recorded in the manifest, `OUT_DIR/.scoretool-batch.json`, itself written atomically.

`batch_ray.py` runs the same per-clip code in Ray actors (one per GPU, or per node without GPUs).
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import hashlib
import itertools
import json
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace

from . import overrides as overrides_mod
from .errors import ScoreToolError
from .media.mux import OUTPUT_KINDS, write_atomic
from .media.probe import IMAGE_EXTENSIONS
from .plans import Settings
from .progress import Reporter

MANIFEST_NAME = ".scoretool-batch.json"
MANIFEST_FORMAT = "scoretool-batch-manifest"
MANIFEST_VERSION = 1
LOCK_NAME = ".scoretool-batch.lock"
# Outputs are rendered to this hidden name beside their final one, then renamed into place. Files
# left behind by a killed run (ours and write_atomic's "..name.tmp-*") are removed at the next start.
PARTIAL_PREFIX = ".scoretool-partial-"
_LEFTOVER_PREFIXES = (PARTIAL_PREFIX, "." + PARTIAL_PREFIX, "." + os.path.splitext(MANIFEST_NAME)[0] + ".tmp-")

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".mxf",
})
FORMATS = ("same", "mp4", "mkv", "mov", "webm", "wav")
# Settings that change how a clip is computed but never what comes out of it.
_NOT_OUTPUT_SETTINGS = ("device",)

# Exit codes of `scoretool batch`.
EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 3, 130


class BatchError(ScoreToolError):
    """The batch as a whole cannot run (bad folders, another batch running, changed settings...)."""


class Aborted(Exception):
    """The batch is stopping (Ctrl-C, or the models could not be loaded): drop this clip's work."""


# --------------------------------------------------------------------------- finding the clips


@dataclass
class Clip:
    rel: str  # path relative to IN_DIR, with "/" separators: the manifest's key
    src: str  # the file to read
    out_rel: str  # output path relative to OUT_DIR
    out_root: str  # OUT_DIR
    kind: str  # "video" or "image" (by extension; probing decides for real)
    error: str | None = None  # why it cannot even start (an unsafe or clashing output name)

    @property
    def out(self) -> str:
        return os.path.join(self.out_root, *self.out_rel.split("/"))

    def absolute(self) -> Clip:
        return replace(self, src=os.path.abspath(self.src), out_root=os.path.abspath(self.out_root))


def find_clips(
    in_dir: str,
    out_dir: str,
    *,
    recursive: bool = False,
    globs: Iterable[str] = (),
    images: bool = False,
    fmt: str = "same",
) -> list[Clip]:
    """The videos (and, with `images`, photos) in `in_dir`, sorted, each with its output path.

    Hidden files and folders are skipped, as are links to folders and `out_dir` itself when it lies
    inside `in_dir`. `globs` (matched against the relative path and against the name) narrow the
    selection further. Outputs keep the relative path; the extension follows `fmt`.
    """
    if fmt not in FORMATS:
        raise BatchError(f"unknown output format '{fmt}' (choose from {', '.join(FORMATS)})")
    if not os.path.isdir(in_dir):
        what = "does not exist" if not os.path.lexists(in_dir) else "is not a folder"
        raise BatchError(f"the input folder {in_dir} {what}.")
    in_real, out_real = os.path.realpath(in_dir), os.path.realpath(out_dir)
    if in_real == out_real:
        raise BatchError(f"the output folder {out_dir} is the input folder: choose another (inputs are never overwritten).")
    extensions = VIDEO_EXTENSIONS | (IMAGE_EXTENSIONS if images else frozenset())
    globs = tuple(globs)
    found: list[tuple[str, str]] = []  # (rel, kind)
    for folder, dirs, files in os.walk(in_dir):
        rel_folder = os.path.relpath(folder, in_dir)
        rel_folder = "" if rel_folder == "." else rel_folder.replace(os.sep, "/") + "/"
        dirs[:] = sorted(
            d for d in dirs
            if recursive and not d.startswith(".") and os.path.realpath(os.path.join(folder, d)) != out_real
        )
        for name in sorted(files):
            ext = os.path.splitext(name)[1].lower()
            if name.startswith(".") or ext not in extensions or not os.path.isfile(os.path.join(folder, name)):
                continue
            rel = rel_folder + name
            if globs and not any(fnmatch.fnmatchcase(rel, g) or fnmatch.fnmatchcase(name, g) for g in globs):
                continue
            found.append((rel, "image" if ext in IMAGE_EXTENSIONS else "video"))
    return _assign_outputs(in_dir, out_dir, found, fmt)


def _output_ext(rel: str, kind: str, fmt: str) -> str:
    ext = os.path.splitext(rel)[1]
    if fmt != "same":
        return "." + fmt
    if kind == "video":
        return ext if ext.lower() in OUTPUT_KINDS["video"] else ".mkv"  # Matroska takes any codec
    return ".mp4"


def _assign_outputs(in_dir: str, out_dir: str, found: list[tuple[str, str]], fmt: str) -> list[Clip]:
    """`a/b.mp4` → `a/b.mp4`; `photo.jpg` → `photo.mp4`, or `photo.jpg.mp4` when that name is taken."""
    outputs: dict[str, str] = {}
    for rel, kind in found:  # names that keep their extension first: they cannot clash
        if _output_ext(rel, kind, fmt) == os.path.splitext(rel)[1]:
            outputs[rel] = rel
    changed = [(rel, os.path.splitext(rel)[0] + _output_ext(rel, kind, fmt)) for rel, kind in found if rel not in outputs]
    wanted = Counter(short for _, short in changed)
    taken = {out: rel for rel, out in outputs.items()}
    clips = []
    errors: dict[str, str] = {}
    for rel, short in changed:
        out = short if wanted[short] == 1 and short not in taken else rel + os.path.splitext(short)[1]
        if out in taken:
            errors[rel] = f"its output name {out} is already used by {taken[out]}"
        taken.setdefault(out, rel)
        outputs[rel] = out
    for rel, kind in found:
        out_rel = outputs[rel]
        error = unsafe_output_reason(out_rel) or errors.get(rel)
        clips.append(Clip(rel=rel, src=os.path.join(in_dir, *rel.split("/")), out_rel=out_rel, out_root=out_dir,
                          kind=kind, error=error))
    return clips


def unsafe_output_reason(out_rel: str) -> str | None:
    """Why a relative output path could leave OUT_DIR (absolute, `..`, empty parts), or None."""
    if not out_rel or out_rel.startswith("/") or "\0" in out_rel or (os.sep == "\\" and "\\" in out_rel):
        return f"its output path {out_rel!r} is not a plain relative path"
    if any(part in ("", ".", "..") for part in out_rel.split("/")):
        return f"its output path {out_rel!r} would leave the output folder"
    return None


def prepare_output(clip: Clip) -> str:
    """Create the output's folders under OUT_DIR and return its path, refusing any way out of OUT_DIR.

    A folder inside OUT_DIR that is a link is followed only if it leads to a folder inside OUT_DIR.
    """
    reason = unsafe_output_reason(clip.out_rel)
    if reason:
        raise BatchError(reason)
    root = os.path.realpath(clip.out_root)
    folder = clip.out_root
    for part in clip.out_rel.split("/")[:-1]:
        folder = os.path.join(folder, part)
        if not os.path.lexists(folder):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)
        if not _inside(os.path.realpath(folder), root) or not os.path.isdir(folder):
            raise BatchError(f"the output folder {folder} is a link or file that leads out of the output folder")
    out = clip.out
    if os.path.islink(out) and not _inside(os.path.realpath(out), root):
        os.unlink(out)  # a link planted at the output name: replace the link, never write through it
    return out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# --------------------------------------------------------------------------- settings


def clip_settings(clip: Clip, base: Settings) -> Settings:
    """The settings for one clip: the command's settings, then the clip's own overrides.

    The clip's sidecar (`clip.scoretool.toml`: a preset, a prompt, per-scene overrides; see
    `scoretool.overrides`) is applied by `score_clip`, as `scoretool score` applies it; this hook is
    for whole-clip settings chosen by other rules (e.g. a preset per folder). Whatever it returns is
    stored in the clip's `settings_digest`, so a change redoes the clip.
    """
    return base


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
        with open(overrides_mod.sidecar_path(clip.src), "rb") as f:
            h.update(b"\0sidecar\0" + f.read())
    with contextlib.suppress(Exception):  # a bad sidecar or preset fails the clip later, with its reason
        sidecar = overrides_mod.gather(clip.src)
        names |= {sidecar.preset} | {o.value for o in sidecar.scenes if o.field == "preset"}
    names.discard(None)
    if names:
        with contextlib.suppress(Exception):
            from .presets import load_presets

            presets = load_presets(settings.presets_dir)
            for name in sorted(names):
                if name in presets:
                    h.update(json.dumps([name, asdict(presets[name])], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the manifest


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Manifest:
    """OUT_DIR/.scoretool-batch.json: the batch's settings and each clip's state.

    {"format": "scoretool-batch-manifest", "version": 1, "input_dir": ..., "output_format": "same",
     "settings": {...}, "created": ..., "updated": ...,
     "clips": {"sub/a.mp4": {"state": "pending" | "running" | "done" | "failed", "output": "sub/a.mp4",
                             "attempts": 1, ... done: "sha256", "size", "input_size", "input_mtime_ns",
                             "settings_digest", "scenes", "duration", "seconds", "finished";
                             failed: "error" (one line), "detail" (a traceback, for unexpected errors)}}}

    Written whole, atomically (temp file, fsync, rename) on every change, by one thread only.
    """

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data

    @property
    def clips(self) -> dict[str, dict]:
        return self.data["clips"]

    @classmethod
    def open(cls, out_dir: str, in_dir: str, settings: Settings, fmt: str, force: bool) -> Manifest:
        path = os.path.join(out_dir, MANIFEST_NAME)
        fresh = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "input_dir": os.path.realpath(in_dir),
            "output_format": fmt, "settings": output_settings(settings), "created": _now(), "updated": _now(),
            "clips": {},
        }
        if not os.path.exists(path):
            return cls(path, fresh)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
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
        changes = _differences(data, fresh)
        if changes and force:  # the old records describe outputs made otherwise: forget them
            return cls(path, fresh)
        if changes:
            raise BatchError(
                f"{out_dir} holds a batch made with other settings ({'; '.join(changes)}): rerun with those "
                f"settings to resume it, add --force to redo every clip with these, or choose another output folder"
            )
        return cls(path, data)

    def save(self) -> None:
        self.data["updated"] = _now()
        # ASCII-only JSON: file names that are not valid UTF-8 survive the round trip.
        text = json.dumps(self.data, indent=1, sort_keys=False) + "\n"

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="ascii") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

        write_atomic(self.path, write)
        _fsync_dir(os.path.dirname(self.path))

    def verdict(self, clip: Clip, digest: str) -> tuple[bool, str]:
        """(skip?, why): a done clip is skipped only if its output is still there, whole and current."""
        entry = self.clips.get(clip.rel)
        if entry is None:
            return False, "new"
        state = entry.get("state")
        if state == "running":
            return False, "interrupted"
        if state == "failed":
            return False, "failed before"
        if state != "done":
            return False, "not started"
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
        if not _inside(os.path.realpath(out), os.path.realpath(clip.out_root)):
            return False, "output missing"
        if file_sha256(out) != entry.get("sha256"):
            return False, "output changed"
        return True, "done before"


def _differences(old: dict, new: dict) -> list[str]:
    changes = []
    if old.get("input_dir") != new["input_dir"]:
        changes.append(f"input folder {old.get('input_dir')} → {new['input_dir']}")
    if old.get("output_format") != new["output_format"]:
        changes.append(f"--format {old.get('output_format')} → {new['output_format']}")
    before, now = old.get("settings") or {}, new["settings"]
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            changes.append(f"{key} {before.get(key)!r} → {now.get(key)!r}")
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
    for folder, dirs, files in os.walk(out_dir):
        for name in files:
            path = os.path.join(folder, name)
            if name.startswith(_LEFTOVER_PREFIXES) and os.path.isfile(path) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += 1
    return removed


# --------------------------------------------------------------------------- the shared models


class CpuSlots:
    """At most `n` threads doing CPU work at once; threads finishing a clip go before new ones."""

    def __init__(self, n: int):
        self.n = max(1, n)
        self._free = self.n
        self._urgent = 0
        self._cv = threading.Condition()
        self._local = threading.local()

    def acquire(self, urgent: bool = False) -> None:
        with self._cv:
            self._urgent += urgent
            try:
                while self._free == 0 or (not urgent and self._urgent):
                    self._cv.wait()
            finally:
                self._urgent -= urgent
            self._free -= 1
        self._local.held = True

    def release(self) -> None:
        if not self.held():
            return
        self._local.held = False
        with self._cv:
            self._free += 1
            self._cv.notify_all()

    def held(self) -> bool:
        return getattr(self._local, "held", False)

    def busy(self) -> int:
        return self.n - self._free


class _Request:
    _numbers = itertools.count()  # next() on it is atomic: requests keep their arrival order

    def __init__(self, kind: str, key: tuple, payload, size: int, on_step=None):
        self.seq = next(_Request._numbers)
        self.kind, self.key, self.payload, self.size, self.on_step = kind, key, payload, size, on_step
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None


_KIND_ORDER = {"load": 0, "caption": 1, "music": 2, "call": 2}  # "call": any other model method, run alone


class ModelServer:
    """The one thread that owns the models and runs every model call, gathering the pending requests
    of several clips into one call: all captions first (they unblock the bridge, which feeds music),
    then music, up to `music_batch` scenes a call. It never waits for a batch to fill while it has
    work, except for `linger` seconds while other threads are still busy on the CPU (and may add
    requests). A batched call that fails is retried one request at a time, so one bad clip fails alone.

    `inline=True`: the thread that creates the server serves it, by calling `serve()` in its loop
    (the CLI's main thread: a thread other than the main one that has run torch must not end while
    the interpreter shuts down, pytorch/pytorch#38228, or the process aborts with "terminate called
    without an active exception"). Otherwise the server starts its own daemon thread.
    """

    def __init__(self, slots: CpuSlots, *, music_batch: int = 8, caption_batch: int | None = None,
                 linger: float = 0.05, status: Callable[[str], None] | None = None, inline: bool = False):
        self.slots = slots
        self.music_batch = max(1, music_batch)
        self.caption_batch = caption_batch
        self.linger = linger
        self.status = status or (lambda text: None)
        self.calls: list[tuple[str, int, int]] = []  # (kind, requests, items) per model call, for tests and timings
        self._models: dict[tuple, object] = {}
        self._queue: list[_Request] = []
        self._cv = threading.Condition()
        self._stopped: BaseException | None = None
        if inline:
            self._owner = threading.current_thread()
        else:
            self._owner = threading.Thread(target=self._serve_forever, name="scoretool-models", daemon=True)
            self._owner.start()

    def call(self, kind: str, key: tuple, payload=None, size: int = 1, on_step=None):
        """Run one request on the model thread and wait for it, giving up the CPU slot meanwhile."""
        request = _Request(kind, key, payload, size, on_step)
        if threading.current_thread() is self._owner:  # the serving thread itself (loading models)
            self._run([request])
            if request.error is not None:
                raise request.error
            return request.result
        with self._cv:
            if self._stopped is not None:
                raise Aborted(str(self._stopped))
            self._queue.append(request)
            self._cv.notify_all()
        held = self.slots.held()
        self.slots.release()
        try:
            while not request.done.wait(0.5):
                pass
        finally:
            if held:
                self.slots.acquire(urgent=True)
        if request.error is not None:
            raise request.error
        return request.result

    def stop(self, reason: BaseException | None = None) -> None:
        """Fail every waiting request with Aborted and end the model thread after its current call."""
        with self._cv:
            self._stopped = reason or Aborted("stopped")
            pending, self._queue = self._queue, []
            self._cv.notify_all()
        for r in pending:
            r.error = Aborted(str(self._stopped))
            r.done.set()

    def serve(self, timeout: float | None = None) -> bool:
        """Run the next model call, waiting up to `timeout` s for a request. False if there was none."""
        with self._cv:
            if not self._queue and self._stopped is None:
                self._cv.wait(timeout)
            if not self._queue or self._stopped is not None:
                return False
            batch = self._take()
        self._run(batch)
        self.status("idle")
        return True

    def _serve_forever(self) -> None:
        while self._stopped is None:
            self.serve()

    def _take(self) -> list[_Request]:
        """Pick the next call's requests (called with the lock held; may wait up to `linger`)."""
        first = min(self._queue, key=lambda r: (_KIND_ORDER[r.kind], r.seq))
        if first.kind in ("load", "call"):
            self._queue.remove(first)
            return [first]
        cap = self._cap(first)
        deadline = time.monotonic() + self.linger
        while True:
            same = sorted((r for r in self._queue if r.kind == first.kind and r.key == first.key), key=lambda r: r.seq)
            size = sum(r.size for r in same)
            left = deadline - time.monotonic()
            if size >= cap or left <= 0 or self.slots.busy() == 0 or self._stopped is not None:
                break
            self._cv.wait(left)
        batch, total = [], 0
        for r in same:
            if batch and total + r.size > cap:
                break
            batch.append(r)
            total += r.size
        for r in batch:
            self._queue.remove(r)
        return batch

    def _cap(self, request: _Request) -> int:
        if request.kind == "music":
            return self.music_batch
        model = self._models.get(request.key)
        per_call = self.caption_batch or getattr(model, "batch_size", 8)
        return max(1, 2 * per_call)

    def _model(self, key: tuple):
        if key not in self._models:
            from .models import pick_device

            self.status(f"loading {key[1]}")
            if key[0] == "caption":
                from .caption import load_captioner

                self._models[key] = load_captioner(key[1], pick_device(key[2]))
            else:
                from .music import load_music_generator

                _, model, device, guidance, temperature, top_k = key
                self._models[key] = load_music_generator(
                    model, pick_device(device), guidance_scale=guidance, temperature=temperature, top_k=top_k)
        return self._models[key]

    def _run(self, batch: list[_Request]) -> None:
        try:
            results = self._execute(batch)
            for r, result in zip(batch, results):
                r.result = result
        except Exception as exc:  # noqa: BLE001 - handed to the waiting clip(s)
            if len(batch) > 1 and not isinstance(exc, ScoreToolError):
                for r in batch:  # fault isolation: find the request that fails
                    self._run([r])
                return
            for r in batch:
                r.error = exc
        finally:
            for r in batch:
                r.done.set()

    def _execute(self, batch: list[_Request]) -> list:
        kind, key = batch[0].kind, batch[0].key
        model = self._model(key)
        if kind == "load":
            return [model]
        clips = len(batch)
        if kind == "call":
            name, args, kwargs = batch[0].payload
            self.calls.append((name, 1, 1))
            self.status(f"{name} for 1 clip")
            return [getattr(model, name)(*args, **kwargs)]
        self.calls.append((kind, clips, sum(r.size for r in batch)))
        if kind == "caption":
            images = [im for r in batch for im in r.payload]
            self.status(f"captions: {len(images)} frame(s) of {clips} clip(s)")
            step = max(1, getattr(model, "batch_size", 8) if self.caption_batch is None else self.caption_batch)
            captions: list[str] = []
            for i in range(0, len(images), step):
                captions += model.caption(images[i : i + step])
            return _split(captions, [len(r.payload) for r in batch])
        prompts = [p for r in batch for p in r.payload[0]]
        durations = [d for r in batch for d in r.payload[1]]
        seeds = [s for r in batch for s in r.payload[2]]
        self.status(f"music: {len(prompts)} scene(s) of {clips} clip(s)")
        steppers = [r.on_step for r in batch if r.on_step]

        def on_step(n: int = 1) -> None:
            for step in steppers:
                step(n)

        clips_out = model.generate(prompts, durations, seeds, on_step=on_step if steppers else None)
        return _split(clips_out, [len(r.payload[0]) for r in batch])


def _split(items: list, sizes: list[int]) -> list[list]:
    out, i = [], 0
    for n in sizes:
        out.append(items[i : i + n])
        i += n
    return out


def _caption_key(s: Settings) -> tuple:
    return ("caption", s.caption_model, s.device)


def _music_key(s: Settings) -> tuple:
    return ("music", s.music_model, s.device, s.guidance_scale, s.temperature, s.top_k)


class SharedCaptioner:
    """A `Captioner` for `api.plan` whose calls go to the model thread, batched with other clips'."""

    name = "shared"
    batch_size = 1 << 30  # api.plan hands over all of a clip's frames at once; the model thread splits

    def __init__(self, server: ModelServer, key: tuple):
        self.server, self.key = server, key

    def caption(self, images):
        return self.server.call("caption", self.key, list(images), size=len(images)) if images else []


class SharedGenerator:
    """A `MusicGenerator` for `api.render` whose calls go to the model thread, batched with other clips'."""

    def __init__(self, server: ModelServer, key: tuple):
        self.server, self.key = server, key
        self._model = None

    def _loaded(self):
        if self._model is None:
            self._model = self.server.call("load", self.key, size=0)
        return self._model

    @property
    def name(self) -> str:
        return self._loaded().name

    @property
    def sample_rate(self) -> int:
        return self._loaded().sample_rate

    def generate(self, prompts, durations, seeds, on_step=None):
        return self.server.call("music", self.key, (list(prompts), list(durations), list(seeds)),
                                size=len(prompts), on_step=on_step)

    def steps(self, durations) -> None:
        """No per-clip step count: a clip's scenes share their model calls with other clips'."""
        return None

    def __getattr__(self, name: str):
        """Any other attribute of the real generator; its methods (e.g. `continue_from`, for
        `--transition continue`) run on the model thread, one call at a time."""
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._loaded(), name)
        if not callable(value):
            return value

        def on_model_thread(*args, **kwargs):
            return self.server.call("call", self.key, (name, args, kwargs), size=1)

        return on_model_thread


class Engine:
    """Everything a process shares between clips: CPU slots, the model thread, the bridges."""

    def __init__(self, jobs: int = 2, *, music_batch: int = 8, linger: float = 0.05,
                 status: Callable[[str], None] | None = None, inline: bool = False, cache=None):
        self.cache = cache  # a scoretool.cache.Cache shared by the clips, or None
        self.jobs = max(1, jobs)
        self.slots = CpuSlots(self.jobs)
        self.server = ModelServer(self.slots, music_batch=music_batch, linger=linger, status=status, inline=inline)
        self._bridges: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    @property
    def window(self) -> int:
        """Clips in flight: the CPU workers, plus enough waiting on the model to fill a music batch."""
        return self.jobs + max(2, self.server.music_batch)

    def preload(self, settings: Settings) -> Settings:
        """Open the bridge and load both models now, so that a missing model or key stops the batch
        with one line instead of failing every clip. Returns the settings with the bridge resolved."""
        bridge, resolved = self.bridge(settings, Reporter())
        self.server.call("load", _caption_key(settings), size=0)
        self.server.call("load", _music_key(settings), size=0)
        return resolved

    def bridge(self, settings: Settings, reporter: Reporter):
        """The bridge for these settings, opened once (`auto` resolved, the LLM's key checked)."""
        from . import api

        key = (settings.bridge, settings.llm_model, settings.device)
        with self._lock:
            if key not in self._bridges:
                bridge, resolved = api.open_bridge(settings, reporter)
                self._bridges[key] = (bridge, resolved.bridge, resolved.llm_model)
        bridge, name, llm_model = self._bridges[key]
        return bridge, replace(settings, bridge=name, llm_model=llm_model)

    def captioner(self, settings: Settings) -> SharedCaptioner:
        return SharedCaptioner(self.server, _caption_key(settings))

    def generator(self, settings: Settings) -> SharedGenerator:
        return SharedGenerator(self.server, _music_key(settings))

    def close(self, reason: BaseException | None = None) -> None:
        self.server.stop(reason)


# --------------------------------------------------------------------------- one clip


def score_clip(clip: Clip, settings: Settings, engine: Engine, reporter: Reporter) -> dict:
    """Score one clip into its final path (through a partial file and a rename). The caller holds a
    CPU slot. Returns what the manifest records about the output; raises on any failure."""
    from . import api
    from .media.probe import probe

    started = time.perf_counter()
    out = prepare_output(clip)
    with reporter.stage("probe"):
        info = probe(clip.src)
    api.check_output(info, out)  # a codec the container can't take fails now, before any model work
    overrides = overrides_mod.gather(clip.src)  # the clip's sidecar, checked against its scenes in plan()
    bridge, settings = engine.bridge(settings, reporter)
    the_plan = api.plan(clip.src, settings, reporter=reporter, captioner=engine.captioner(settings), bridge=bridge,
                        overrides=overrides, cache=engine.cache)
    folder = os.path.dirname(out)
    partial = os.path.join(folder, PARTIAL_PREFIX + uuid.uuid4().hex[:12] + os.path.splitext(out)[1])
    try:
        api.render(the_plan, partial, reporter=reporter, generator=engine.generator(settings), cache=engine.cache)
        with reporter.stage("finish"):
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            digest = file_sha256(partial)
            size = os.path.getsize(partial)
            os.replace(partial, out)
            _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return {
        "sha256": digest, "size": size, "scenes": len(the_plan.scenes), "duration": round(the_plan.duration, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "timings": {k: round(v, 3) for k, v in reporter.timings.items()},
    }


def failure(exc: BaseException, seconds: float | None = None) -> dict:
    """A failed clip's record: one line for people, and the traceback when the error was unexpected."""
    if isinstance(exc, ScoreToolError):
        text, detail = str(exc), None
    else:
        text = f"{type(exc).__name__}: {exc}"
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    result = {"ok": False, "error": lines[0] if lines else type(exc).__name__}
    if detail:
        result["detail"] = detail
    if seconds is not None:
        result["seconds"] = round(seconds, 3)
    return result


def run_clip(clip: Clip, settings: Settings, engine: Engine, reporter: Reporter) -> dict:
    """`score_clip` in a CPU slot, with every failure turned into a record (Aborted propagates)."""
    started = time.perf_counter()
    engine.slots.acquire()
    try:
        return {"ok": True, **score_clip(clip, settings, engine, reporter)}
    except Aborted:
        raise
    except Exception as exc:  # noqa: BLE001 - fault isolation: the batch goes on
        return failure(exc, time.perf_counter() - started)
    finally:
        engine.slots.release()


# --------------------------------------------------------------------------- running a batch


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
    model_calls: list[tuple[str, int, int]] = field(default_factory=list)

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
        from pathlib import Path

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


class LocalExecutor:
    """Clips in threads of this process: `jobs` at a time on the CPU, one model thread."""

    def __init__(self, jobs: int, *, music_batch: int = 8, linger: float = 0.05, cache=None):
        self.jobs, self.music_batch, self.linger, self.cache = jobs, music_batch, linger, cache
        self.engine: Engine | None = None

    @property
    def calls(self) -> list:
        return self.engine.server.calls if self.engine else []

    def run(self, todo: list[tuple[Clip, Settings]], base: Settings, emit: Callable, display: BatchDisplay) -> None:
        """Workers (threads) do the CPU stages, this thread runs the models, a recorder thread writes
        the manifest as clips start and end (so a "done" is recorded at once, even mid model call)."""
        engine = self.engine = Engine(self.jobs, music_batch=self.music_batch, linger=self.linger,
                                      status=display.model_status, inline=True, cache=self.cache)
        work: queue.SimpleQueue = queue.SimpleQueue()
        for item in todo:
            work.put(item)
        events: queue.SimpleQueue = queue.SimpleQueue()
        stopping, finished = threading.Event(), threading.Event()
        broken: list[BaseException] = []

        def worker() -> None:
            while not stopping.is_set():
                try:
                    clip, settings = work.get_nowait()
                except queue.Empty:
                    return
                events.put(("start", clip, None))
                event = ("aborted", clip, None)
                try:
                    event = ("end", clip, run_clip(clip, settings, engine, ClipReporter(display, clip.rel)))
                except Aborted:
                    return
                except BaseException as exc:  # noqa: BLE001 - never leave the batch waiting for this clip
                    event = ("end", clip, failure(exc))
                finally:
                    events.put(event)

        def recorder() -> None:
            left = len(todo)
            try:
                while left:
                    item = events.get()
                    if item is None:
                        return
                    kind, clip, result = item
                    left -= kind != "start"
                    if kind == "aborted" or (stopping.is_set() and kind == "end" and not result.get("ok")):
                        continue  # cut short by the interruption, not the clip's fault: it stays "running"
                    emit(kind, clip, result)
            except BaseException as exc:  # noqa: BLE001 - e.g. the manifest cannot be written: stop the batch
                broken.append(exc)
                stopping.set()
            finally:
                finished.set()

        # Models first: a missing model or key stops the batch before any clip starts.
        engine.preload(base)
        record = threading.Thread(target=recorder, name="scoretool-manifest", daemon=True)
        record.start()
        workers = [threading.Thread(target=worker, name=f"{WORKER_PREFIX}{i}", daemon=True)
                   for i in range(min(len(todo), engine.window))]
        for t in workers:
            t.start()
        try:
            while not finished.is_set():
                if not engine.server.serve(timeout=0.1) and not any(t.is_alive() for t in workers):
                    events.put(None)  # every worker is gone: nothing more will come
                    break
            if broken:
                raise broken[0]
        except BaseException as exc:
            stopping.set()
            engine.close(Aborted("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)))
            raise
        finally:
            events.put(None)
            record.join()
            engine.close()
        for t in workers:  # all done: their clips are recorded
            t.join()


WORKER_PREFIX = "scoretool-clip-"


def clips_in_flight() -> bool:
    """Whether worker threads are still busy (after Ctrl-C or a fatal error mid-batch)."""
    return any(t.name.startswith(WORKER_PREFIX) and t.is_alive() for t in threading.enumerate())


def exit_now(code: int) -> None:
    """End the process without the interpreter's shutdown. A worker thread still inside a native
    library (OpenCV, decord, PyAV...) when Python finalizes makes the process abort with "terminate
    called without an active exception" (pytorch/pytorch#38228); their partial files are removed by
    the next run. Everything of value (manifest, outputs, report) is on disk by now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run_batch(
    in_dir: str,
    out_dir: str,
    settings: Settings | None = None,
    *,
    recursive: bool = False,
    globs: Iterable[str] = (),
    images: bool = False,
    fmt: str = "same",
    jobs: int | None = None,
    force: bool = False,
    ray: str | None = None,
    music_batch: int = 8,
    display: BatchDisplay | None = None,
    settings_for: Callable[[Clip, Settings], Settings] = clip_settings,
    cache_dir: str | None = None,
    use_cache: bool = True,
) -> BatchReport:
    """Score the folder `in_dir` into `out_dir`; see the module docstring. Ctrl-C returns a report
    with `interrupted` set (re-running resumes). `ray`: a Ray address ("auto", "local", host:port).
    The content-addressed cache (`scoretool.cache`) is used as `score` uses it, unless `use_cache`
    is false."""
    settings = settings or Settings()
    display = display or BatchDisplay()
    jobs = jobs or min(4, os.cpu_count() or 1)
    started = time.perf_counter()
    clips = find_clips(in_dir, out_dir, recursive=recursive, globs=globs, images=images, fmt=fmt)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise BatchError(f"cannot create the output folder {out_dir}: {e.strerror or e}") from None
    report = BatchReport(input_dir=in_dir, output_dir=out_dir, ray=ray)
    with locked(out_dir):
        remove_leftovers(out_dir)
        manifest = Manifest.open(out_dir, in_dir, settings, fmt, force)
        rows: dict[str, Row] = {}
        todo: list[tuple[Clip, Settings]] = []
        digests: dict[str, str] = {}
        input_stats: dict[str, tuple[int, int]] = {}
        for clip in clips:
            if clip.error:
                rows[clip.rel] = Row(clip.rel, clip.out_rel, "failed", "new", error=clip.error)
                manifest.clips[clip.rel] = {"state": "failed", "output": clip.out_rel, "error": clip.error, "finished": _now()}
                continue
            clip_set = settings_for(clip, settings)
            digests[clip.rel] = settings_digest(clip, clip_set)
            skip, why = (False, "forced") if force else manifest.verdict(clip, digests[clip.rel])
            entry = manifest.clips.get(clip.rel, {})
            if skip:
                rows[clip.rel] = Row(clip.rel, clip.out_rel, "skipped", why, entry.get("scenes"), entry.get("duration"), 0.0)
            else:
                rows[clip.rel] = Row(clip.rel, clip.out_rel, "pending", why)
                manifest.clips[clip.rel] = {"state": "pending", "output": clip.out_rel, "attempts": entry.get("attempts", 0)}
                todo.append((clip, clip_set))
        manifest.save()
        report.rows = [rows[c.rel] for c in clips]
        display.begin(len(clips), sum(r.status == "skipped" for r in rows.values()), len(todo), ray)

        def emit(kind: str, clip: Clip, result: dict | None) -> None:
            row = rows[clip.rel]
            entry = manifest.clips.setdefault(clip.rel, {})
            if kind == "start":
                with contextlib.suppress(OSError):
                    st = os.stat(clip.src)
                    input_stats[clip.rel] = (st.st_size, st.st_mtime_ns)
                entry.update(state="running", started=_now(), attempts=entry.get("attempts", 0) + 1)
                display.clip_started(clip.rel)
            else:
                if result.get("ok"):
                    size, mtime = input_stats.get(clip.rel, (None, None))
                    entry.clear()
                    entry.update(
                        state="done", output=clip.out_rel, sha256=result["sha256"], size=result["size"],
                        input_size=size, input_mtime_ns=mtime, settings_digest=digests[clip.rel],
                        scenes=result["scenes"], duration=result["duration"], seconds=result["seconds"],
                        finished=_now(), attempts=entry.get("attempts", 1),
                    )
                    row.status, row.scenes, row.duration, row.seconds = "done", result["scenes"], result["duration"], result["seconds"]
                else:
                    attempts = entry.get("attempts", 1)
                    entry.clear()
                    entry.update(state="failed", output=clip.out_rel, error=result["error"], finished=_now(), attempts=attempts)
                    if result.get("detail"):
                        entry["detail"] = result["detail"]
                    row.status, row.error, row.seconds = "failed", result["error"], result.get("seconds")
                display.clip_finished(row)
            manifest.save()

        executor = None
        try:
            if todo:
                if ray is not None:
                    from .batch_ray import RayExecutor

                    cache_root = os.path.abspath(cache_dir) if cache_dir else None
                    executor = RayExecutor(ray, jobs, music_batch=music_batch, cache=(cache_root, use_cache))
                    todo = [(clip.absolute(), s) for clip, s in todo]
                else:
                    from .cache import Cache

                    executor = LocalExecutor(jobs, music_batch=music_batch, cache=Cache(cache_dir, enabled=use_cache))
                executor.run(todo, settings, emit, display)
        except KeyboardInterrupt:
            report.interrupted = True
        except BaseException:
            # A fatal error (models, Ray): clips it cut short are not the clips' fault.
            for row in rows.values():
                if row.status == "pending" and manifest.clips.get(row.clip, {}).get("state") == "running":
                    manifest.clips[row.clip]["state"] = "pending"
            manifest.save()
            raise
        finally:
            report.seconds = time.perf_counter() - started
            report.model_calls = list(getattr(executor, "calls", []))
            display.end(report)
    return report


# --------------------------------------------------------------------------- progress and summary


class BatchDisplay:
    """Quiet: shows nothing. Subclasses draw; every method may be called from worker threads."""

    def begin(self, clips: int, skipped: int, todo: int, ray: str | None) -> None: ...

    def clip_started(self, clip: str) -> None: ...

    def clip_stage(self, clip: str, stage: str) -> None: ...

    def clip_finished(self, row: Row) -> None: ...

    def model_status(self, text: str) -> None: ...

    def end(self, report: BatchReport) -> None: ...


class ClipReporter(Reporter):
    """A clip's stage timings (as `score` keeps them), with each stage shown by the batch display."""

    def __init__(self, display: BatchDisplay, clip: str):
        super().__init__()
        self.display, self.clip = display, clip

    def _begin(self, name: str, total: int | None):
        self.display.clip_stage(self.clip, name)


def _describe(row: Row) -> str:
    if row.status == "failed":
        return f"failed  {row.clip}: {row.error}"
    return f"{row.status:<7} {row.clip} → {row.output} ({row.scenes} scene(s), {row.duration or 0:.1f} s) in {row.seconds or 0:.1f} s"


class LineDisplay(BatchDisplay):
    """One line per finished clip on stderr: for logs and pipes."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.finished = 0
        self.todo = 0

    def _print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def begin(self, clips, skipped, todo, ray):
        self.todo = todo
        where = f" on Ray ({ray})" if ray else ""
        self._print(f"{clips} clip(s): {skipped} already done, {todo} to score{where}")

    def clip_finished(self, row):
        self.finished += 1
        self._print(f"[{self.finished}/{self.todo}] {_describe(row)}")


class RichBatchDisplay(BatchDisplay):
    """A live view on a terminal: overall progress, each clip in flight with its stage, the model thread."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.lock = threading.Lock()
        self.tasks: dict[str, int] = {}
        self.counts = Counter()
        self.overall = self.model = None

    def begin(self, clips, skipped, todo, ray):
        from rich.markup import escape

        where = f" on Ray ({escape(ray)})" if ray else ""
        self.console.print(f"{clips} clip(s): {skipped} already done, {todo} to score{where}", highlight=False)
        if not todo:
            return
        self.progress.start()
        self.overall = self.progress.add_task("clips", total=todo)
        self.model = self.progress.add_task("[dim]models: loading", total=None)

    def _title(self) -> str:
        failed = f", [red]{self.counts['failed']} failed[/red]" if self.counts["failed"] else ""
        return f"clips: {self.counts['done']} done{failed}"

    def clip_started(self, clip):
        from rich.markup import escape

        with self.lock:
            self.tasks[clip] = self.progress.add_task(f"  {escape(clip)} [dim]queued", total=None)

    def clip_stage(self, clip, stage):
        from rich.markup import escape

        with self.lock:
            if clip in self.tasks:
                self.progress.update(self.tasks[clip], description=f"  {escape(clip)} [dim]{stage}")

    def clip_finished(self, row):
        from rich.markup import escape

        with self.lock:
            task = self.tasks.pop(row.clip, None)
            if task is not None:
                self.progress.remove_task(task)
            self.counts[row.status] += 1
            if self.overall is not None:
                self.progress.update(self.overall, advance=1, description=self._title())
            colour = "red" if row.status == "failed" else "green"
            self.progress.console.print(f"[{colour}]{escape(_describe(row))}[/{colour}]", highlight=False)

    def model_status(self, text):
        if self.model is not None:
            self.progress.update(self.model, description=f"[dim]models: {text}")

    def end(self, report):
        self.progress.stop()


def summary_table(report: BatchReport):
    from rich.table import Table

    counts = report.counts
    title = (f"{len(report.rows)} clip(s): {counts['done']} scored, {counts['skipped']} skipped, "
             f"{counts['failed']} failed" + (f", {counts['pending']} not done (interrupted)" if counts["pending"] else "")
             + f" in {report.seconds:.1f} s")
    table = Table(title=title, title_justify="left")
    for column, justify in (("clip", "left"), ("scenes", "right"), ("duration", "right"), ("status", "left"), ("time", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    colours = {"done": "green", "skipped": "dim", "failed": "red", "pending": "yellow"}
    for r in report.rows:
        status = r.status if r.status != "failed" else f"failed: {r.error}"
        if r.status in ("done", "skipped") and r.reason not in ("new", "done before"):
            status += f" ({r.reason})"
        table.add_row(
            r.clip, "" if r.scenes is None else str(r.scenes), "" if r.duration is None else f"{r.duration:.1f} s",
            f"[{colours[r.status]}]{_escape(status)}[/]", "" if r.seconds is None else f"{r.seconds:.1f} s",
        )
    return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
