"""A review session: the plan being edited, its edits and their undo, and the session's files.

The plan file stays the source of truth: every accepted edit is checked like a hand edit of the
file (`scoretool.plans.validate`, the presets), then saved atomically, so `scoretool render PLAN`
makes what the page shows. A refused edit changes nothing, in memory or on disk.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import secrets
import shutil
import threading
from pathlib import Path

from .. import api
from ..errors import PlanError
from ..files import make_temp_folder, write_atomic
from ..plans import Plan, Scene, validate
from ..presets import check_plan_presets, load_presets
from ..validation import MAX_SEED
from . import media

EDITABLE = ("prompt", "preset", "seed")
UNDO_DEPTH = 100


class Busy(PlanError):
    """A render is running: the plan cannot change under it."""


class Session:
    """One plan under review, its output and a work folder (thumbnails, stems), removed by `close`."""

    def __init__(self, plan_path: str, output: str, *, cache_dir: str | None = None, use_cache: bool = True):
        self.plan_path = os.path.abspath(plan_path)
        self.plan = Plan.load(self.plan_path)
        self._relative_input = not os.path.isabs(json.loads(Path(self.plan_path).read_text(encoding="utf-8"))["input"]["path"])
        self.presets = load_presets(self.plan.settings.presets_dir)
        check_plan_presets(self.plan, self.presets)
        api.check_output(self.plan.input, output)
        self.output = os.path.abspath(output)
        self.cache_dir, self.use_cache = cache_dir, use_cache
        self.work = make_temp_folder("review")  # removed by close(); after a kill, swept by a later run
        self.stems = os.path.join(self.work, "stems")
        self.lock = threading.RLock()
        self._thumbs = threading.Lock()  # one ffmpeg at a time, each frame made once; the plan's lock stays free
        self.busy = False
        self.version = 0  # bumped by each render: the page's media URLs carry it, so the player reloads
        self.rendered: dict | None = None  # the plan (as a dict) the output and the stems were made from
        self.last_cache: dict = {}  # what the last render reused and made, per kind
        self.curves: dict | None = None  # the soundtrack's waveform and loudness (`media.curves`)
        self._undo: list[dict] = []
        self._stamp = self._file_stamp()  # the plan file as this session last read or wrote it

    # What the page shows.
    def state(self) -> dict:
        with self.lock:
            data = self.plan.to_dict()
            return {
                "plan": data,
                "plan_path": self.plan_path,
                "output": self.output,
                "presets": {name: p.description for name, p in sorted(self.presets.items())},
                "can_undo": bool(self._undo),
                "version": self.version,
                "rendered": self.rendered is not None,
                "up_to_date": self.rendered == _music_of(data),
                "cache": self.last_cache,
            }

    # Edits.
    def edit(self, number: int, changes: dict) -> None:
        """Change a scene's prompt, preset or seed; refused (nothing saved) unless the plan stays valid."""
        if not isinstance(changes, dict):
            raise PlanError("an edit is a JSON object of prompt, preset or seed")
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise PlanError(f"scene {number}: '{str(unknown[0])[:40]}' cannot be edited here (only {', '.join(EDITABLE)})")
        with self.lock:
            self._check_ready()
            candidate = copy.deepcopy(self.plan)
            apply_edit(_scene(candidate, number), changes)
            validate(candidate)
            check_plan_presets(candidate, self.presets)
            self._commit(candidate)

    def new_take(self, number: int) -> int:
        """Another seed for the scene: the same prompt, other music."""
        with self.lock:
            old = _scene(self.plan, number).seed
            seed = old
            while seed == old:
                seed = secrets.randbelow(MAX_SEED + 1)
            self.edit(number, {"seed": seed})
            return seed

    def undo(self) -> None:
        """Back to the plan as it was before the last edit (saved, like an edit)."""
        with self.lock:
            self._check_ready()
            if not self._undo:
                raise PlanError("nothing to undo")
            previous = Plan.from_dict(self._undo[-1])
            self._save(previous)
            self._undo.pop()
            self.plan = previous

    def _commit(self, candidate: Plan) -> None:
        before = self.plan.to_dict()
        self._save(candidate)
        self._undo = (self._undo + [before])[-UNDO_DEPTH:]
        self.plan = candidate

    def _save(self, the_plan: Plan) -> None:
        """Atomically, with the input path as the file had it (relative to the plan's folder, or not)."""
        if self._relative_input:
            the_plan = copy.copy(the_plan)
            the_plan.input = dataclasses.replace(the_plan.input, path=os.path.relpath(the_plan.input.path))
        the_plan.save(self.plan_path)
        self._stamp = self._file_stamp()

    def _check_ready(self) -> None:
        """No render is running, and the plan file is as this session left it: a change made to it
        elsewhere (an editor, `scoretool plan`) is read in, never overwritten."""
        if self.busy:
            raise Busy("a render is running: edit when it has finished")
        if self._changed_on_disk():
            raise PlanError("the plan file was changed outside this page: the page now shows it as it is; make the edit again")

    def _changed_on_disk(self) -> bool:
        """Whether the file changed since this session read or wrote it; if so, it is read in again
        (checked like any plan; the undo steps, made on the old one, go)."""
        if self._file_stamp() == self._stamp:
            return False
        self.plan = Plan.load(self.plan_path)
        self._stamp, self._undo = self._file_stamp(), []
        return True

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.plan_path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    # Renders (run by `jobs.Renderer` in a worker thread).
    def begin_render(self) -> Plan:
        """The plan to render (a copy); edits are refused until `end_render`."""
        with self.lock:
            self._check_ready()
            self.busy = True
            return copy.deepcopy(self.plan)

    def end_render(self, result: api.Result | None) -> None:
        """After a render: its plan (prompts the bridge wrote, the model that ran) becomes the plan and
        is saved, unless the file was changed elsewhere meanwhile (then that is the plan)."""
        try:
            curves = media.curves(self.output, result.plan, self.work) if result else None
            with self.lock:
                if result is None:
                    return
                if not self._changed_on_disk():
                    self._save(result.plan)
                    self.plan = result.plan
                self.rendered = _music_of(result.plan.to_dict())
                self.last_cache, self.curves = result.cache, curves
                self.version += 1
        finally:
            with self.lock:
                self.busy = False

    # Files the page may ask for: chosen here by number, never by a path from the request.
    def thumbnail(self, number: int, index: int) -> str:
        with self.lock:
            scene = _scene(self.plan, number)
            if not 0 <= index < len(scene.frames):
                raise PlanError(f"scene {number} has no frame {index}")
            t = scene.frames[index]
        target = os.path.join(self.work, "thumbs", f"{t:.3f}.jpg")
        with self._thumbs:
            if not os.path.isfile(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                write_atomic(target, lambda tmp: media.thumbnail(self.plan.input, t, tmp))  # never half a file
        return target

    def stem(self, number: int) -> str | None:
        with self.lock:
            _scene(self.plan, number)
            path = os.path.join(self.stems, f"scene_{number:02d}.wav")
            return path if self.rendered and os.path.isfile(path) else None

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def apply_edit(scene: Scene, changes: dict) -> None:
    """A person's prompt is theirs ("user"); an emptied one, or a new preset over a prompt the bridge
    wrote, is written again by the bridge at the next render (in the preset's style)."""
    if "prompt" in changes:
        text = changes["prompt"]
        text = (text.strip() or None) if isinstance(text, str) else text
        if text != scene.prompt:
            scene.prompt, scene.prompt_source = text, ("user" if text else None)
            _drop_prompt_fallback(scene)
    if "preset" in changes:
        name = changes["preset"] or None
        if name != scene.preset and "prompt" not in changes and scene.prompt_source != "user":
            scene.prompt, scene.prompt_source = None, None
            _drop_prompt_fallback(scene)
        scene.preset = name
    if "seed" in changes:
        scene.seed = changes["seed"]


def _drop_prompt_fallback(scene: Scene) -> None:
    parts = [p for p in (scene.fallback_reason or "").split(" | ") if p and not p.startswith("prompt: ")]
    scene.fallback_reason = " | ".join(parts) or None


def _scene(the_plan: Plan, number) -> Scene:
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(the_plan.scenes):
        raise PlanError(f"no scene {number}; this plan has scenes 1 to {len(the_plan.scenes)}")
    return the_plan.scenes[number - 1]


def _music_of(data: dict) -> dict:
    """What the rendered music depends on: the settings and the scenes (not which model ran)."""
    return {"settings": data["settings"], "scenes": data["scenes"]}
