"""`scoretool review` in a real browser: headless Chromium driven by Selenium (Debian's `chromium`
and `chromium-driver`). The page opens on a clip planned by the command itself (tiny models), shows
the scenes and their thumbnails; scene 2's prompt is edited, Render pressed: the plan file changes,
only scene 2's music is generated again, and the player gets the new file. Screenshots before and
after the edit go to $SCORETOOL_ARTIFACTS (default: the test's tmp folder); the path is printed."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import make_clip

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
httpx = pytest.importorskip("httpx")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="no headless browser: install Debian's chromium and chromium-driver"
)
NEW_PROMPT = "solo harp, gentle rain, 60 BPM"


@pytest.fixture
def artifacts(tmp_path):
    folder = Path(os.environ.get("SCORETOOL_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nreview screenshots in {folder}")
    return folder


@pytest.fixture
def review_server(tmp_path, tiny_models):
    """`scoretool review in.mp4 ...` (planned first) in its own process; yields (url, plan path)."""
    clip = make_clip(tmp_path / "in.mp4", colours=("red", "green", "blue"), seconds=2.0)
    args = [sys.executable, "-m", "scoretool", "review", str(clip), "--no-browser", "--bridge", "offline",
            "--caption-model", str(tiny_models["blip"]), "--music-model", str(tiny_models["musicgen"]),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        for line in proc.stderr:
            match = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
            if match:
                break
        else:
            pytest.fail(f"scoretool review printed no URL (exit {proc.wait()})")
        yield match.group(0), tmp_path / "in.plan.json"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode in (0, 130)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700", "--mute-audio"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def wait(driver, condition, what, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; status: {driver.find_element('id', 'status').text!r}")


def status(driver) -> str:
    return driver.find_element("id", "status").text


def api_state(url) -> dict:
    return httpx.get(url.replace("/?", "/api/state?")).json()


def video_md5(url) -> str:
    return hashlib.md5(httpx.get(url.replace("/?", "/media/video?")).content).hexdigest()


PLAYER = """const v = document.getElementById('video');
return {src: v.currentSrc, ready: v.readyState, error: v.error && v.error.code, duration: v.duration};"""


def test_edit_a_prompt_and_render_in_the_browser(review_server, browser, artifacts):
    url, plan_path = review_server
    browser.get(url)
    wait(browser, lambda d: status(d).startswith("up to date"), "the first render")
    assert "3 scene(s) generated, 0 from the cache" in status(browser)

    blocks = browser.find_elements("css selector", "#blocks .block")
    assert [b.text for b in blocks] == ["1", "2", "3"]
    assert all("/media/thumb/" in b.value_of_css_property("background-image") for b in blocks)
    widths = [b.size["width"] for b in blocks]
    assert max(widths) - min(widths) <= 4  # three 2 s scenes: blocks sized by duration
    thumbs = wait(browser, lambda d: d.execute_script(
        "const i = [...document.querySelectorAll('.frames img')]; return i.every(x => x.complete && x.naturalWidth) && i.length"),
        "the frame thumbnails")  # fmt: skip
    assert thumbs == 9  # 3 frames a scene
    captions = [c.text for c in browser.find_elements("css selector", "#scene-2 figcaption")]
    assert captions == json.loads(plan_path.read_text())["scenes"][1]["frame_captions"]
    before = wait(browser, lambda d: (p := d.execute_script(PLAYER))["ready"] >= 2 and p, "the player")
    assert before["error"] is None and "v=1" in before["src"] and before["duration"] == pytest.approx(6.0, abs=0.2)
    blocks[2].click()  # a scene's block seeks the player to its start
    assert wait(browser, lambda d: d.execute_script("return document.getElementById('video').currentTime") or None,
                "the seek") == pytest.approx(4.0, abs=0.05)  # fmt: skip
    md5_before = video_md5(url)
    plan_before = json.loads(plan_path.read_text())
    browser.save_screenshot(str(artifacts / "review-before.png"))

    from selenium.webdriver.common.keys import Keys

    prompt = browser.find_element("css selector", "#scene-2 textarea.prompt")
    prompt.send_keys(Keys.CONTROL, "a")
    prompt.send_keys(NEW_PROMPT)  # typed over the old prompt: one edit, sent on leaving the field
    browser.find_element("id", "render").click()  # the edit (on leaving the field) goes first, then the render
    wait(browser, lambda d: "v=2" in d.execute_script(PLAYER)["src"] and status(d).startswith("up to date"), "the second render")

    plan_after = json.loads(plan_path.read_text())
    assert plan_after["scenes"][1]["prompt"] == NEW_PROMPT and plan_after["scenes"][1]["prompt_source"] == "user"
    for n in (0, 2):
        assert plan_after["scenes"][n] == plan_before["scenes"][n]
    assert "1 scene(s) generated, 2 from the cache" in status(browser)
    assert api_state(url)["cache"]["clip"] == {"hits": 2, "misses": 1}  # scene 2 only
    after = wait(browser, lambda d: (p := d.execute_script(PLAYER))["ready"] >= 2 and p, "the player's new file")
    assert after["error"] is None and after["src"] != before["src"]
    assert video_md5(url) != md5_before  # the player now serves the new soundtrack
    assert browser.find_element("css selector", "#scene-2 textarea.prompt").get_attribute("value") == NEW_PROMPT
    browser.save_screenshot(str(artifacts / "review-after.png"))
    print(f"before: {artifacts / 'review-before.png'}\nafter:  {artifacts / 'review-after.png'}")
