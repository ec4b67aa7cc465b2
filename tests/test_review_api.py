"""`scoretool review`'s server through Starlette's TestClient: edits, renders, undo, exports, and
its guards (token, Host header, paths, bad edits). Real pipeline, tiny models."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

pytest.importorskip("starlette", reason="the review extra (starlette) is not installed")
pytest.importorskip("httpx", reason="httpx (Starlette's TestClient) is not installed")

from starlette.testclient import TestClient  # noqa: E402

import scoretool  # noqa: E402
from scoretool.cache import Cache  # noqa: E402
from scoretool.review.jobs import Renderer  # noqa: E402
from scoretool.review.server import create_app  # noqa: E402
from scoretool.review.session import Session  # noqa: E402

from .review_support import copy_plan, plan_json, planned_clip, wait_for_render  # noqa: E402

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def planned(tmp_path_factory, tiny_models):
    return planned_clip(tmp_path_factory.mktemp("review-plan"), tiny_models)


@pytest.fixture
def served(planned, tmp_path):
    """(client, session, renderer, plan path); the cache is shared by the module's tests."""
    plan_path = copy_plan(planned, tmp_path)
    session = Session(str(plan_path), str(tmp_path / "out.mp4"), cache_dir=str(planned.parent / "cache"))
    renderer = Renderer(session)
    client = TestClient(create_app(session, renderer, TOKEN), base_url="http://127.0.0.1")
    client.headers["X-Scoretool-Token"] = TOKEN
    yield client, session, renderer, plan_path
    renderer.close()
    session.close()
    assert not os.path.exists(session.work)


def render(client) -> dict:
    response = client.post("/api/render")
    assert response.status_code == 200, response.text
    state = wait_for_render(lambda: client.get("/api/state").json())
    assert state["render"]["error"] is None, state["render"]
    return state


def test_token_is_required_on_every_request(served):
    client, *_ = served
    bare = TestClient(client.app, base_url="http://127.0.0.1")
    for path in ("/", "/static/app.js", "/api/state", "/media/video", "/media/thumb/1/0", "/api/curves"):
        assert bare.get(path).status_code == 403, path
        assert bare.get(path, params={"token": "wrong"}).status_code == 403, path
    assert bare.post("/api/render").status_code == 403
    assert bare.post("/api/scenes/1", json={"seed": 5}).status_code == 403
    page = bare.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and f"static/app.js?token={TOKEN}" in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and "default-src 'self'" in page.headers["content-security-policy"]
    assert bare.get("/api/state", headers={"X-Scoretool-Token": TOKEN}).status_code == 200
    # No asset names another host: the page works with no network.
    for asset in ("/", "/static/app.js", "/static/style.css"):
        assert not re.search(r"(src|href)=\"(https?:)?//|https?://", client.get(asset).text), asset


def test_host_header_is_checked(served):
    client, *_ = served
    for host in ("127.0.0.1", "127.0.0.1:8765", "localhost:8765"):
        assert client.get("/api/state", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "0.0.0.0:8765"):
        assert client.get("/api/state", headers={"Host": host}).status_code == 400, host


@pytest.mark.parametrize("path", [
    "/static/../session.py", "/static/..%2Fsession.py", "/static/%2e%2e%2fsession.py", "/static/%2e%2e/%2e%2e/plans.py",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/index.html/../../plans.py", "/static/app.js%00.py",
    "/media/thumb/1/..%2F..%2F..%2Fetc%2Fpasswd", "/media/thumb/1/-1", "/media/thumb/9/0", "/media/stem/..%2Fin.plan.json",
    "/media/video/../../in.plan.json", "/media/..%2Fin.plan.json", "/media//etc/passwd", "/%2Fetc%2Fpasswd",
    "/api/../in.plan.json", "/media/stem/%2e%2e%2fplan.json",
])  # fmt: skip
def test_no_path_from_the_request_reaches_the_file_system(served, path):
    client, *_ = served
    response = client.get(path)
    assert response.status_code in (404, 405), (path, response.status_code)
    assert "root:" not in response.text and "def " not in response.text and '"scenes"' not in response.text


def test_bad_edits_get_a_message_and_change_nothing(served):
    client, session, _, plan_path = served
    before = plan_path.read_bytes()
    bad = [
        ("/api/scenes/2", {"seed": -1}, r"seed \(-1\) must be a whole number"),
        ("/api/scenes/2", {"seed": "x"}, r"seed \('x'\) must be a whole number"),
        ("/api/scenes/2", {"seed": 2**63}, r"seed .* must be a whole number from 0 to 2\*\*63-1"),
        ("/api/scenes/2", {"seed": 1.5}, r"must be a whole number"),
        ("/api/scenes/2", {"prompt": "x" * 1001}, r"prompt is 1001 characters long"),
        ("/api/scenes/2", {"prompt": 7}, r"prompt \(7\) must be text"),
        ("/api/scenes/2", {"preset": "nope"}, r"scene 2: unknown preset 'nope'.*lofi"),
        ("/api/scenes/2", {"start": 0.5}, r"'start' cannot be edited here"),
        ("/api/scenes/2", ["prompt"], r"an edit is a JSON object"),
        ("/api/scenes/9", {"seed": 1}, r"no scene 9; this plan has scenes 1 to 3"),
        ("/api/scenes/0", {"seed": 1}, r"no scene 0"),
        ("/api/undo", None, r"nothing to undo"),
        ("/api/export", {"kind": "stems"}, r"press Render first"),
        ("/api/export", {"kind": "../x"}, r"press Render first|cannot export"),
    ]
    for path, body, message in bad:
        response = client.post(path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert re.search(message, response.json()["error"]), (body, response.json())
    response = client.post("/api/scenes/2", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    assert plan_path.read_bytes() == before
    assert client.get("/api/state").json()["plan"] == session.plan.to_dict()
    assert not session.state()["can_undo"]


def test_edit_render_only_that_scene_then_undo(served, tmp_path):
    client, session, _, plan_path = served
    first = render(client)
    assert first["version"] == 1 and first["up_to_date"]
    video = client.get("/media/video", headers={"Range": "bytes=0-99"})
    assert video.status_code == 206 and len(video.content) == 100  # the player can seek
    curves = client.get("/api/curves").json()
    assert len(curves["peaks"]) > 100 and curves["cuts"] == pytest.approx([2.0, 4.0], abs=0.1)
    assert max(lufs for _, lufs in curves["loudness"]) == pytest.approx(-14, abs=4)

    state = client.post("/api/scenes/2", json={"prompt": "  solo harp, gentle rain, 60 BPM  "}).json()
    scene = plan_json(plan_path)["scenes"][1]
    assert scene["prompt"] == "solo harp, gentle rain, 60 BPM" and scene["prompt_source"] == "user"
    assert state["can_undo"] and not state["up_to_date"]
    again = render(client)
    assert again["cache"]["clip"] == {"hits": 2, "misses": 1}  # scene 2 only
    assert again["version"] == 2 and again["up_to_date"]
    stem = client.get("/media/stem/2")
    assert stem.status_code == 200 and stem.content[:4] == b"RIFF"

    # The plan file is the source of truth: `scoretool render PLAN` makes the same music, from the cache.
    same = scoretool.render(str(plan_path), str(tmp_path / "again.mp4"), cache=Cache(session.cache_dir))
    assert same.cache["clip"] == {"hits": 3, "misses": 0}

    client.post("/api/undo").raise_for_status()
    assert plan_json(plan_path)["scenes"][1]["prompt"] == first["plan"]["scenes"][1]["prompt"]
    assert plan_json(plan_path)["input"]["path"] == "in.mp4"  # still relative to the plan, as it was


def test_new_take_preset_and_exports(served):
    client, session, _, plan_path = served
    old = plan_json(plan_path)["scenes"][0]["seed"]
    client.post("/api/scenes/1/take").raise_for_status()
    assert plan_json(plan_path)["scenes"][0]["seed"] not in (old, None)
    client.post("/api/scenes/3", json={"preset": "lofi"}).raise_for_status()
    assert plan_json(plan_path)["scenes"][2]["prompt"] is None  # the bridge writes it again, in the preset's style
    state = render(client)
    assert state["cache"]["clip"] == {"hits": 1, "misses": 2}  # the new take and the new style
    assert "lo-fi" in plan_json(plan_path)["scenes"][2]["prompt"]
    assert plan_json(plan_path)["scenes"][2]["prompt_source"] == "offline"

    stems = client.post("/api/export", json={"kind": "stems"}).json()["written"]
    assert sorted(os.listdir(stems[0])) == ["music.wav", "plan.json", "scene_01.wav", "scene_02.wav", "scene_03.wav"]
    pytest.importorskip("opentimelineio", reason="the timeline extra is not installed")
    written = client.post("/api/export", json={"kind": "otio"}).json()["written"]
    assert written[0] == os.path.splitext(session.output)[0] + ".otio" and os.path.isfile(written[0])


def test_edits_wait_while_a_render_runs(served):
    client, session, _, plan_path = served
    session.begin_render()  # as the worker does
    before = plan_path.read_bytes()
    response = client.post("/api/scenes/1", json={"seed": 3})
    assert response.status_code == 409 and "a render is running" in response.json()["error"]
    assert client.post("/api/render").status_code == 409
    session.end_render(None)
    assert plan_path.read_bytes() == before
    assert client.post("/api/scenes/1", json={"seed": 3}).status_code == 200


def test_cli_serves_on_localhost_with_a_token_and_stops_on_ctrl_c(planned, tmp_path):
    import httpx

    plan_path = copy_plan(planned, tmp_path)
    temp = tmp_path / "temp"  # the session's work folder goes here, and must be gone after
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoretool", "review", str(plan_path), "--no-browser", "--no-render",
         "--cache-dir", str(planned.parent / "cache")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(temp)},
    )  # fmt: skip
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", line)
        assert match, line
        url = match.group(0)
        assert httpx.get(url).status_code == 200
        assert httpx.get(url.split("?")[0]).status_code == 403
        state = httpx.get(url.replace("/?", "/api/state?")).json()
        assert state["plan_path"] == str(plan_path) and state["output"] == str(tmp_path / "in.scored.mp4")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err  # 130: the CLI's code for a Ctrl-C, after every cleanup
    assert "review stopped" in err and "Traceback" not in err
    assert not list(temp.iterdir()) and not list(tmp_path.glob(".*tmp*"))


def test_cli_refuses_a_bad_plan_in_one_line(tmp_path):
    from .test_cli import assert_one_line_error, run

    (tmp_path / "p.json").write_text("{}")
    assert_one_line_error(run("review", tmp_path / "p.json", "--no-browser"), r"not a scoretool plan")
    assert_one_line_error(run("review", tmp_path / "missing.json", "--no-browser"), r"plan file not found")


def test_a_render_stopped_by_closing_leaves_no_output_and_no_temp_files(served, tmp_path):
    client, session, renderer, plan_path = served
    client.post("/api/scenes/1", json={"prompt": "a prompt no clip in the cache has, 77 BPM"}).raise_for_status()
    renderer.stopping.set()  # as Ctrl-C does: the render stops at its first music step
    client.post("/api/render").raise_for_status()
    renderer.wait(120)
    status = renderer.status()
    assert not status["running"] and status["error"] == "cancelled"
    assert not os.path.exists(session.output)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert client.post("/api/scenes/1", json={"seed": 9}).status_code == 200  # the plan is editable again


def test_cli_refuses_a_busy_port_and_another_video_s_plan(planned, tmp_path):
    import socket

    from .test_cli import assert_one_line_error, run

    plan_path = copy_plan(planned, tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "scoretool", "review", str(plan_path), "--no-browser", "--port", str(port)],
                              capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(temp)})  # fmt: skip
        assert_one_line_error(proc, rf"cannot listen on 127.0.0.1:{port}")
    assert not list(temp.iterdir())  # the session's work folder went too
    other = tmp_path / "other.mp4"
    shutil.copy(tmp_path / "in.mp4", other)
    assert_one_line_error(run("review", other, "--plan", plan_path, "--no-browser"), r"is the plan of .*in.mp4, not of .*other.mp4")


def test_a_plan_file_changed_elsewhere_is_read_in_not_overwritten(served):
    client, session, _, plan_path = served
    client.post("/api/scenes/1", json={"seed": 11}).raise_for_status()
    data = plan_json(plan_path)
    data["scenes"][2]["prompt"] = "edited in a text editor, 90 BPM"
    plan_path.write_text(json.dumps(data), encoding="utf-8")
    response = client.post("/api/scenes/2", json={"seed": 12})
    assert response.status_code == 400 and "changed outside this page" in response.json()["error"]
    assert plan_json(plan_path) == data  # not overwritten
    state = client.get("/api/state").json()
    assert state["plan"]["scenes"][2]["prompt"] == "edited in a text editor, 90 BPM" and not state["can_undo"]
    client.post("/api/scenes/2", json={"seed": 12}).raise_for_status()  # made again, on the plan as it is now
    after = plan_json(plan_path)
    assert after["scenes"][1]["seed"] == 12 and after["scenes"][2]["prompt"] == "edited in a text editor, 90 BPM"
