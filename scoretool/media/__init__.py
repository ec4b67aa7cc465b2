"""Media stages: probe a file, find its scenes, read frames, and mux the score back in.

Import the modules directly (`from scoretool.media.probe import probe`); nothing is re-exported
here so that `scoretool.media.probe` always names the module, and importing the package stays cheap.
"""
