"""Audio stage: lay the scene clips on the timeline, crossfade, normalise loudness, write WAV."""
