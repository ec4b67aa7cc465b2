"""Which files a batch scores, and where each one's output goes (never outside OUT_DIR)."""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import ScoreToolError
from ..media.mux import OUTPUT_KINDS
from ..media.probe import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".mxf",
})
FORMATS = ("same", "mp4", "mkv", "mov", "webm", "wav")


class BatchError(ScoreToolError):
    """The batch as a whole cannot run (bad folders, another batch running, changed settings...)."""


@dataclass(frozen=True)
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
    out_real = os.path.realpath(out_dir)
    if os.path.realpath(in_dir) == out_real:
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
    errors: dict[str, str] = {}
    for rel, short in changed:
        out = short if wanted[short] == 1 and short not in taken else rel + os.path.splitext(short)[1]
        if out in taken:
            errors[rel] = f"its output name {out} is already used by {taken[out]}"
        taken.setdefault(out, rel)
        outputs[rel] = out
    return [
        Clip(rel=rel, src=os.path.join(in_dir, *rel.split("/")), out_rel=outputs[rel], out_root=out_dir, kind=kind,
             error=unsafe_output_reason(outputs[rel]) or errors.get(rel))
        for rel, kind in found
    ]


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
        if not inside(os.path.realpath(folder), root) or not os.path.isdir(folder):
            raise BatchError(f"the output folder {folder} is a link or file that leads out of the output folder")
    out = clip.out
    if os.path.islink(out) and not inside(os.path.realpath(out), root):
        os.unlink(out)  # a link planted at the output name: replace the link, never write through it
    return out


def inside(path: str, root: str) -> bool:
    """Whether the real path `path` is `root` or lies under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
