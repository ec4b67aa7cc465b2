"""Timeline export: the score handed to an editor as one timeline file (see `formats.FORMATS`).

`export_timeline` writes it for a plan just rendered (`render(..., timeline=...)`, `--timeline`);
`export_from_cache` for a plan rendered before (`scoretool timeline PLAN -o FILE`). OpenTimelineIO
and its adapters are an optional dependency (`pip install 'scoretool[timeline]'`): nothing here
imports them until a timeline is asked for.
"""

from .export import check_timeline_path, export_from_cache, export_timeline, media_folder

__all__ = ["check_timeline_path", "export_from_cache", "export_timeline", "media_folder"]
