"""scoretool: give a video a fitting soundtrack (scenes → captions → music prompts → MusicGen → mux).

    import scoretool
    scoretool.score("in.mp4", "scored.mp4")
    plan = scoretool.plan("in.mp4"); plan.scenes[0].prompt = "solo piano"; scoretool.render(plan, "out.mp4")
"""

from .errors import ScoreToolError
from .plans import Plan, Scene, Settings

__all__ = ["Plan", "Result", "Scene", "ScoreToolError", "Settings", "plan", "render", "score"]


def __getattr__(name):
    # The pipeline is imported on first use, so `import scoretool.testing` and `--help` stay light.
    if name in ("Result", "plan", "render", "score"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
