"""The pipeline's stages, one module each, talking through the `Plan` (see ARCHITECTURE.md).

    analysis  probe → one decode → scenes and the frames to caption
    captions  frames → BLIP captions (cached by pixels and model)
    prompts   captions → scene caption → video summary → music prompt (the bridge)
    music     prompts → one clip per scene (cached by model, sampling, prompt, seed, length)
    output    clips → soundtrack (crossfades, ducking, loudness) → the video or a WAV

`scoretool.api` runs them in order; `scoretool.batch` runs the same stages with shared models.
"""
