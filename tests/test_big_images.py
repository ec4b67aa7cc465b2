"""A 100-megapixel photo: decoded at the sizes needed (captions, a 1080p video), in little memory,
and nothing from Pillow on the console."""

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import pytest
from PIL import Image

from scoretool.media.frames import load_image, scene_frames
from scoretool.media.probe import probe

BIG = (12288, 8192)  # 100.7 MP: over Pillow's 89.5 MP DecompressionBombWarning limit


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    """Smooth gradients: a 100 MP JPEG of about 1.5 MB, made in a few seconds."""
    path = tmp_path_factory.mktemp("big") / "big photo.jpg"
    g = Image.linear_gradient("L").resize(BIG)
    Image.merge("RGB", (g, g.transpose(Image.Transpose.FLIP_LEFT_RIGHT), g.transpose(Image.Transpose.FLIP_TOP_BOTTOM))).save(
        path, quality=85
    )
    return path


def test_probe_and_frames_decode_small_and_log_pillows_warning(big_jpeg, caplog, recwarn):
    with caplog.at_level(logging.INFO, logger="scoretool.media.frames"):
        info = probe(str(big_jpeg))
        frames = scene_frames(str(big_jpeg), (0.0, 4.0), 3)
    assert (info.width, info.height) == BIG  # the size as it is, though it was decoded at an 8th
    assert [f.size for _, f in frames] == [(720, 480)] * 3  # shorter side 480, as a video's kept frames
    assert not [w for w in recwarn if "PIL" in w.filename or "Image" in str(w.category)]
    assert any("DecompressionBombWarning" in r.getMessage() for r in caplog.records)


def test_load_image_shrinks_to_the_box_and_never_enlarges(big_jpeg, tmp_path):
    assert load_image(str(big_jpeg), 1080, 1920).size == (1620, 1080)
    small = tmp_path / "small.png"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(small)
    assert load_image(str(small), 1080, 1920).size == (300, 200)
    assert load_image(str(small), shorter_side=100).size == (150, 100)  # other formats shrink too


def test_a_100_megapixel_photo_scores_in_little_memory_and_quietly(big_jpeg, tiny_models, tmp_path):
    out = tmp_path / "photo.mp4"
    args = [sys.executable, "-m", "scoretool", "score", str(big_jpeg), "-o", str(out), "--duration", "3",
            "--caption-model", str(tiny_models["blip"]), "--music-model", str(tiny_models["musicgen"]),
            "--bridge", "offline", "--no-cache", "-q", "--json"]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr)
        peak_mb = 0.0
        while child.poll() is None:  # VmHWM: the child's own high-water mark (wait4's ru_maxrss
            peak_mb = max(peak_mb, _high_water_mb(child.pid))  # would start at this process's)
            time.sleep(0.05)
        stdout.seek(0)
        stderr.seek(0)
        printed, errors = stdout.read().decode(), stderr.read().decode()
    assert child.returncode == 0, errors
    assert "Warning" not in errors and "PIL" not in errors, errors
    assert json.loads(printed)["output"] == str(out)
    print(f"\n100 MP JPEG scored: peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 700
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (1620, 1080)  # 1080p at most, the aspect kept


def _high_water_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):  # it has just exited
        return 0.0
