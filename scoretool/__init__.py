"""scoretool: give a video a fitting soundtrack (scenes → captions → music prompts → MusicGen → mux).

    import scoretool
    scoretool.score("in.mp4", "scored.mp4")
    plan = scoretool.plan("in.mp4"); plan.scenes[0].prompt = "solo piano"; scoretool.render(plan, "out.mp4")
"""

from .errors import ScoreToolError

__all__ = ["Plan", "Result", "Scene", "ScoreToolError", "Settings", "plan", "render", "score"]


def __getattr__(name):
    # Imported on first use, so `import scoretool.testing` and `--help` stay light, and the CLI's
    # signal handling is in place within milliseconds of start (scoretool.__main__).
    if name in ("Plan", "Scene", "Settings"):
        from . import plans

        return getattr(plans, name)
    if name in ("Result", "plan", "render", "score"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
