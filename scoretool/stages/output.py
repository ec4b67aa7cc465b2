"""Output: the clips mixed into the soundtrack (crossfades, fades, the original sound ducked or
mixed, loudness), then written: a WAV of the music, or the video with its picture copied. The mix
works on tracks in files, a block at a time (`audio.tracks`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..audio.assemble import assemble_track, plan_transitions
from ..audio.loudness import normalize, true_peak_db
from ..audio.original import OUTPUT_RATE, combine_track, read_original_track
from ..audio.tracks import Track, TrackFactory, in_folder, in_memory, whole, write_wav
from ..files import temp_folder
from ..media import mux
from ..media.info import MediaInfo
from ..plans import Plan
from ..progress import Reporter


def mix_music_track(the_plan: Plan, clips: Sequence, rate: int, tracks: TrackFactory = in_memory):
    """The music alone as the render mixes it (transitions, fades, loudness), as a track made by
    `tracks`, and its transitions."""
    settings = the_plan.settings
    bounds = [(s.start, s.end) for s in the_plan.scenes]
    transitions = plan_transitions(clips, bounds, rate, settings.transition, settings.crossfade)
    music = assemble_track(clips, bounds, rate, settings.crossfade, settings.fade_in, settings.fade_out, transitions, tracks)
    normalize(music, music, rate, settings.loudness)
    return music, transitions


def mix_music(the_plan: Plan, clips: Sequence, rate: int):
    """`mix_music_track` in memory: the music as an array, and its transitions (the timeline export)."""
    music, transitions = mix_music_track(the_plan, clips, rate)
    return whole(music), transitions


def write_output(the_plan: Plan, clips: Sequence, rate: int, output: str, reporter: Reporter, stems: str | None = None) -> None:
    """Mix the clips into the soundtrack and write it: a WAV of the music, or the video with it.

    Every track of the mix is a file in a temporary folder, worked on a block at a time, so the
    memory this takes does not grow with the video's length."""
    with temp_folder("mix") as work:
        tracks = in_folder(work)
        with reporter.stage("mix"):
            music, _transitions = mix_music_track(the_plan, clips, rate, tracks)
            if stems:
                write_stems(stems, the_plan, clips, music, rate)
            if os.path.splitext(output)[1].lower() in mux.OUTPUT_KINDS["audio"]:
                write_wav(output, music, rate)
                return
            mixed = _soundtrack(the_plan, music, rate, tracks, reporter)
            soundtrack = tracks("soundtrack", mixed.frames, mixed.channels)
            normalize(mixed, soundtrack, OUTPUT_RATE, the_plan.settings.loudness)
        with reporter.stage("mux"):
            _mux(the_plan, mixed, soundtrack, output, work, tracks)


def _soundtrack(the_plan: Plan, music: Track, rate: int, tracks: TrackFactory, reporter: Reporter) -> Track:
    """The music laid under the original sound (ducked or mixed) or alone, at the output rate."""
    settings = the_plan.settings
    info = the_plan.input
    mode = original_audio_mode(settings.original_audio, info)
    original = None
    if mode != "replace":
        original = read_original_track(info.path, info.start_time, the_plan.duration, tracks=tracks)
        normalize(original, original, OUTPUT_RATE, settings.loudness)
    return combine_track(
        music, rate, original, mode, settings.music_level, settings.duck_depth, settings.duck_other,
        note=reporter.note, tracks=tracks,
    )  # fmt: skip


def _mux(the_plan: Plan, mixed: Track, soundtrack: Track, output: str, work: str, tracks: TrackFactory) -> None:
    """Encode the soundtrack under the picture; where the encoder overshoots, limit lower and again."""
    info = the_plan.input
    wav = os.path.join(work, "soundtrack.wav")
    write_wav(wav, soundtrack, OUTPUT_RATE)
    encoded = [soundtrack]  # what the last encode was given

    def relimit(over_db: float) -> str:
        """The encoded sound peaked `over_db` over the limit: the same loudness, limited that much
        (and a little: a re-encode overshoots again, by about as much but not exactly; with 0.2 dB Opus
        was still 0.004 dB over after three tries) under what was encoded."""
        ceiling = true_peak_db(encoded[0]) - over_db - 0.3
        encoded[0] = tracks("relimited", mixed.frames, mixed.channels)
        normalize(mixed, encoded[0], OUTPUT_RATE, the_plan.settings.loudness, ceiling)
        quieter = os.path.join(work, f"soundtrack{ceiling:.2f}.wav")
        write_wav(quieter, encoded[0], OUTPUT_RATE)
        return quieter

    if info.kind == "image":
        mux.still_video(info.path, wav, output, the_plan.duration, relimit)
    else:
        mux.mux_video(info, wav, output, relimit)


def original_audio_mode(requested: str, info: MediaInfo) -> str:
    """`auto` ducks the music under the input's own sound when it has one, else replaces."""
    if requested == "auto":
        return "duck" if info.has_audio else "replace"
    if requested != "replace" and not info.has_audio:
        return "replace"  # nothing to mix with
    return requested


def write_stems(folder: str, the_plan: Plan, clips: Sequence, music: Track, rate: int) -> None:
    """For an editor's own timeline: the whole music track, each scene's clip, and the plan."""
    write_wav(os.path.join(folder, "music.wav"), music, rate)
    for scene, clip in zip(the_plan.scenes, clips):
        write_wav(os.path.join(folder, f"scene_{scene.number:02d}.wav"), clip, rate)
    the_plan.save(os.path.join(folder, "plan.json"))


def check_output(info: MediaInfo, output: str) -> str:
    """Refuse an output we could not write, before any model is loaded. Returns "video" or "audio"."""
    kind = mux.check_output_path(info.path, output)
    if kind == "video" and info.kind == "video":
        mux.check_container(info, output)
    return kind


def check_plan_path(input_path: str, plan_path: str) -> None:
    mux.check_output_path(input_path, plan_path, kinds=("plan",))
