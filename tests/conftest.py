import os
from pathlib import Path

import pytest

# Tests never reach the Hugging Face hub: models come from folders the tests build. Set before
# huggingface_hub is imported (it reads the variable once, at import).
os.environ["HF_HUB_OFFLINE"] = "1"
# The tiny test models are far too small to gain from threads; on a 2-core machine that is also
# running other jobs, threads only fight (measured: 3 s vs up to 60 s for the same generation).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# `--bridge auto` picks Anthropic when a key is set: tests must never reach the real API.
os.environ.pop("ANTHROPIC_API_KEY", None)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
# The project's shared sample media sit beside the checkout (../shared/media); CI lays them there too.
SHARED_MEDIA = Path(os.environ.get("SCORETOOL_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
needs_shared_media = pytest.mark.skipif(
    not (SHARED_MEDIA / "README.md").is_file(), reason=f"shared sample media not found at {SHARED_MEDIA}"
)


@pytest.fixture(scope="session", autouse=True)
def own_cache_dir(tmp_path_factory):
    """Tests never read or fill the user's cache (captions, clips, int8 weights): one cache for the run."""
    os.environ["SCORETOOL_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random MusicGen and BLIP folders, built once per test run, loaded like real checkpoints."""
    from scoretool.testing import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny-models"))
