"""The Anthropic bridge against a real HTTP server on 127.0.0.1 speaking the Messages API.

Requests go through the real `anthropic` SDK (base URL pointed at the server); nothing in the SDK
is patched. Timeouts and backoff are made small through AnthropicLLM's own parameters.

    python -m tests.test_bridge_anthropic     # prints what each fault does to a 4-scene plan
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
import typing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scoretool.stages.prompts import write_prompts
from scoretool.bridge import PROMPT_LIMIT, LLMUnavailable, load_bridge, resolve_bridge
from scoretool.bridge.anthropic_llm import DEFAULT_MODEL, AnthropicLLM
from scoretool.bridge.llm import LLMBridge
from scoretool.plans import Plan, Scene, Settings
from scoretool.progress import Reporter

from .helpers import media_info

KEY = "sk-ant-test-0123456789-SECRET"
GOOD = "Serene pastoral orchestral with strings, flute and harp, gentle 84 BPM, in D major"

# Frame captions of the four shots of big_buck_bunny_0_30.webm.
SCENES = [
    ["a green field with trees and a blue sky", "a field of grass with trees in the background"],
    ["a stream running through a forest", "a small river in the woods"],
    ["a bird sitting on a tree branch", "a bird on a branch with the words the peach open movie project presents"],
    ["a rabbit hole in a grassy hill", "the title big buck bunny over a grassy hill"],
]


# --------------------------------------------------------------------------- the server


@dataclass
class Reply:
    status: int = 200
    text: str = GOOD
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    error_type: str = "api_error"
    message: str = ""  # the error's message (default: "scripted <status>")
    stop_reason: str = "end_turn"


class FakeAnthropic:
    """POST /v1/messages answers from `script` (a list, its last reply repeating, or a function of
    the request number and body); GET /v1/models/{id} answers 200; both answer 401 when the key
    is not `key`.
    Every request is recorded with its headers and JSON body; `max_in_flight` counts overlap."""

    def __init__(self, script, key: str = KEY) -> None:
        self.script, self.key = script, key
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake._record(self, None)
                if fake.sent_key(self.headers) != fake.key:
                    return fake._send(self, 401, fake._error("authentication_error", "invalid x-api-key"))
                model = self.path.rsplit("/", 1)[-1]
                fake._send(self, 200, {"type": "model", "id": model, "display_name": model,
                                       "created_at": "2026-01-01T00:00:00Z", "lifecycle": "active"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                n = fake._record(self, body)
                if fake.sent_key(self.headers) != fake.key:
                    return fake._send(self, 401, fake._error("authentication_error", "invalid x-api-key"))
                reply = fake.script(n, body) if callable(fake.script) else fake.script[min(n, len(fake.script) - 1)]
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    time.sleep(reply.delay)
                    if reply.status != 200:
                        return fake._send(self, reply.status, fake._error(reply.error_type, reply.message or f"scripted {reply.status}"), reply.headers)
                    fake._send(self, 200, {
                        "id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": body.get("model"),
                        "content": [{"type": "text", "text": reply.text}], "stop_reason": reply.stop_reason,
                        "stop_sequence": None, "usage": {"input_tokens": 42, "output_tokens": 17},
                    }, reply.headers)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def sent_key(headers) -> str | None:
        """The SDK sends the key as `x-api-key` or, in newer versions, `Authorization: Bearer`."""
        bearer = headers.get("authorization", "")
        return headers.get("x-api-key") or (bearer[len("Bearer "):] if bearer.startswith("Bearer ") else None)

    @property
    def messages(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def _record(self, handler, body) -> int:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body})
            return sum(1 for r in self.requests if r["method"] == handler.command) - 1

    @staticmethod
    def _error(kind: str, message: str) -> dict:
        return {"type": "error", "error": {"type": kind, "message": message}}

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.send_header("request-id", "req_test")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def llm(server: FakeAnthropic, key: str = KEY, **options) -> AnthropicLLM:
    options = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.05, **options}
    return AnthropicLLM(key, base_url=server.url, **options)


def make_plan(scenes=SCENES, kind="video") -> Plan:
    return Plan(
        input=media_info("bbb.webm", kind),
        settings=Settings(bridge="anthropic"),
        scenes=[Scene(number=i, start=float(i - 1), end=float(i), frame_captions=list(c)) for i, c in enumerate(scenes, 1)],
    )


class Notes(Reporter):
    def __init__(self):
        super().__init__()
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def ask_prompt(bridge) -> object:
    return bridge.music_prompt("a stream running through a forest", summary="a day in a meadow", user_prompt=None, kind="video")


# --------------------------------------------------------------------------- the faults


def test_success_goes_through_the_sdk_with_key_model_and_templates():
    with FakeAnthropic([Reply(text=f'"{GOOD}"')]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.text == GOOD and answer.source == "anthropic" and answer.reason is None  # quotes stripped
    (request,) = server.messages
    assert request["path"] == "/v1/messages"
    assert FakeAnthropic.sent_key(request["headers"]) == KEY and request["headers"].get("anthropic-version")
    body = request["body"]
    assert body["model"] == DEFAULT_MODEL and body["max_tokens"] <= 200
    assert "composer" in body["system"] and "one score" in body["system"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # two few-shot examples, then the scene
    assert "This scene: a stream running through a forest" in body["messages"][-1]["content"]
    assert "Whole video: a day in a meadow" in body["messages"][-1]["content"]


def test_429_then_success_retries_after_what_the_server_asks():
    with FakeAnthropic([Reply(429, headers={"retry-after": "0.2"}, error_type="rate_limit_error"), Reply()]) as server:
        started = time.perf_counter()
        answer = ask_prompt(LLMBridge(llm(server, max_backoff=1.0)))
        elapsed = time.perf_counter() - started
    assert answer.text == GOOD and answer.source == "anthropic"
    assert len(server.messages) == 2
    assert 0.2 <= elapsed < 1.0  # waited what retry-after said


@pytest.mark.parametrize("status, kind", [(500, "api_error"), (529, "overloaded_error"), (503, "api_error")])
def test_server_errors_forever_fall_back_to_offline(status, kind):
    with FakeAnthropic([Reply(status, error_type=kind)]) as server:
        answer = ask_prompt(LLMBridge(llm(server, retries=2)))
    assert answer.source == "offline-fallback"
    assert f"HTTP {status}" in answer.reason and "after 3 tries" in answer.reason
    assert " BPM" in answer.text and len(answer.text) <= PROMPT_LIMIT  # the offline bridge's prompt
    assert len(server.messages) == 3  # 1 + 2 retries, then no more


def test_500_forever_the_whole_plan_goes_on_offline_and_stops_calling():
    with FakeAnthropic([Reply(500)]) as server:
        plan, notes = make_plan(), Notes()
        write_prompts(plan, LLMBridge(llm(server, retries=1)), notes)
    assert all(s.prompt and s.caption for s in plan.scenes)
    assert {s.prompt_source for s in plan.scenes} == {"offline-fallback"}
    assert all("HTTP 500" in s.fallback_reason for s in plan.scenes)
    assert plan.video_summary_source == "offline-fallback"
    # The captions: the first scene alone, then the other three at once: 4 failed calls of 2 requests.
    # After 3 failures in a row the LLM is left alone: the summary and the prompts cost no request.
    assert len(server.messages) == 8
    assert any("not asked" in s.fallback_reason for s in plan.scenes)
    assert any("used the offline bridge" in n for n in notes.notes)


def test_401_stops_the_run_at_once_with_one_clear_line():
    with FakeAnthropic([Reply()], key="the-right-key") as server:
        plan = make_plan()
        with pytest.raises(LLMUnavailable) as caught:
            write_prompts(plan, LLMBridge(llm(server)), Notes())
        assert len(server.messages) == 1  # the first scene alone: the others never spent a call
        message = str(caught.value)
        assert message == "the Anthropic API rejected the key (401): check ANTHROPIC_API_KEY"
        # Later calls fail at once, without a request.
        bridge = LLMBridge(llm(server))
        with pytest.raises(LLMUnavailable):
            ask_prompt(bridge)
        with pytest.raises(LLMUnavailable):
            ask_prompt(bridge)
        assert len(server.messages) == 2


def test_401_is_caught_by_the_preflight_before_any_captioning():
    with FakeAnthropic([Reply()], key="the-right-key") as server:
        with pytest.raises(LLMUnavailable, match=r"rejected the key \(401\)"):
            LLMBridge(llm(server)).preflight()
        assert [r["method"] for r in server.requests] == ["GET"]
        LLMBridge(llm(server, key="the-right-key")).preflight()  # a good key passes


def test_a_slow_answer_past_the_timeout_is_retried_then_falls_back():
    with FakeAnthropic([Reply(delay=3.0)]) as server:
        started = time.perf_counter()
        answer = ask_prompt(LLMBridge(llm(server, timeout=0.3, retries=1)))
        elapsed = time.perf_counter() - started
    assert answer.source == "offline-fallback"
    assert "no answer within 0.3 s after 2 tries" in answer.reason
    assert elapsed < 2.0 and len(server.messages) == 2


def test_slow_but_in_time_is_fine():
    with FakeAnthropic([Reply(delay=0.3)]) as server:
        answer = ask_prompt(LLMBridge(llm(server, timeout=2.0)))
    assert answer.source == "anthropic"


def test_an_empty_answer_is_asked_again_then_falls_back():
    with FakeAnthropic([Reply(text="   ")]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.source == "offline-fallback" and "empty" in answer.reason
    assert len(server.messages) == 2  # asked twice (attempts=2), no transport retries needed


def test_an_over_long_answer_is_asked_again_then_trimmed_at_a_word_boundary():
    long = (f"{GOOD}, opening with a solo oboe over soft sustained violas, then warm horns and a harp glissando "
            "bring a rising theme that blooms into a lush tutti before settling back into quiet woodwind chords")
    assert len(long) > PROMPT_LIMIT
    with FakeAnthropic([Reply(text=long)]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.source == "anthropic"
    assert len(answer.text) <= PROMPT_LIMIT and long.startswith(answer.text)
    assert long[len(answer.text)] in " ,"  # cut between words
    second = server.messages[1]["body"]["messages"]
    assert second[-2]["role"] == "assistant" and "too long" in second[-1]["content"]


def test_chatter_is_rejected_and_the_second_answer_used():
    with FakeAnthropic([Reply(text=f"Sure! Here is a prompt for your scene: {GOOD}"), Reply(text=GOOD)]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.text == GOOD and answer.source == "anthropic"
    retry = server.messages[1]["body"]["messages"][-1]["content"]
    assert "cannot be used" in retry and "Sure" in server.messages[1]["body"]["messages"][-2]["content"]


def test_chatter_twice_falls_back():
    with FakeAnthropic([Reply(text="Certainly! I'd love to help with that scene.\n\nHere it is.")]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.source == "offline-fallback" and "2 answers failed the checks" in answer.reason


def test_a_refusal_falls_back():
    with FakeAnthropic([Reply(text="", stop_reason="refusal")]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
    assert answer.source == "offline-fallback" and "refused" in answer.reason


def test_an_unknown_model_stops_the_run():
    with FakeAnthropic([Reply(404, error_type="not_found_error")]) as server:
        with pytest.raises(LLMUnavailable, match=r"404 for model 'claude-nope'.*--llm-model"):
            ask_prompt(LLMBridge(llm(server, model="claude-nope")))


# --------------------------------------------------------------------------- the run as a whole


def test_scenes_are_bridged_concurrently_and_recorded_in_order():
    def script(n, body):
        text = body["messages"][-1]["content"]
        if text.startswith("Frame captions"):
            first = text.splitlines()[1].removeprefix("- ")
            return Reply(text=f"Scene showing {first}", delay=0.4)
        if text.startswith("Scene captions"):
            return Reply(text="A gentle day in a sunny cartoon meadow, from field to forest to a rabbit hole.")
        scene = text.split("This scene: ")[1].splitlines()[0]
        return Reply(text=f"Calm pastoral orchestral with flute and strings, 84 BPM, in D major, for {scene[14:50]}", delay=0.4)

    with FakeAnthropic(script) as server:
        plan = make_plan()
        started = time.perf_counter()
        write_prompts(plan, LLMBridge(llm(server, concurrency=4)), Notes())
        elapsed = time.perf_counter() - started
    assert server.max_in_flight >= 2  # scenes overlapped
    assert elapsed < 2.4  # 4 captions + 4 prompts one after another would take 3.2 s
    for scene, captions in zip(plan.scenes, SCENES):
        assert scene.caption == f"Scene showing {captions[0]}" and scene.caption_source == "anthropic"
        assert scene.caption[len("Scene showing "):][:30] in scene.prompt and scene.prompt_source == "anthropic"
        assert scene.fallback_reason is None
    assert plan.video_summary.startswith("A gentle day") and plan.video_summary_source == "anthropic"
    # Every scene's prompt request carried the whole-video summary.
    prompts = [r for r in server.messages if "This scene:" in r["body"]["messages"][-1]["content"]]
    assert len(prompts) == 4 and all("Whole video: A gentle day" in r["body"]["messages"][-1]["content"] for r in prompts)


def test_users_prompt_reaches_every_step():
    with FakeAnthropic([Reply(text="A meadow with trees under a blue sky."), Reply(text=GOOD)]) as server:
        plan = make_plan(SCENES[:1], kind="image")
        plan.settings.prompt = "melancholic solo piano"
        write_prompts(plan, LLMBridge(llm(server)), Notes())
    contents = [r["body"]["messages"][-1]["content"] for r in server.messages]
    assert all("User's brief: melancholic solo piano" in c for c in contents if "Frame captions" in c or "Picture:" in c)
    assert any(c.startswith("Picture:") for c in contents)  # the image template for a still


def test_render_never_asks_again_for_a_scene_with_a_prompt():
    with FakeAnthropic([Reply(text="A field.")]) as server:
        plan = make_plan()
        for scene in plan.scenes:
            scene.caption, scene.prompt, scene.prompt_source = "x", "solo piano, tender", "user"
        write_prompts(plan, None, Notes())  # no bridge is even loaded: there is nothing to ask
        assert server.requests == []


def test_key_never_appears_in_logs_plans_errors_or_tracebacks(caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with FakeAnthropic([Reply(500), Reply(429), Reply(text="Sure!"), Reply(text=GOOD)]) as server:
        plan = make_plan(SCENES[:2])
        write_prompts(plan, LLMBridge(llm(server, retries=1)), Notes())
        texts.append(json.dumps(plan.to_dict()))
        texts.append(repr(llm(server)))
    with FakeAnthropic([Reply()], key="other") as server:
        try:
            write_prompts(make_plan(), LLMBridge(llm(server)), Notes())
        except LLMUnavailable as exc:
            texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    with FakeAnthropic([Reply(status=400, error_type="invalid_request_error", message=f"bad header x-api-key: {KEY}")]) as server:
        answer = ask_prompt(LLMBridge(llm(server)))
        texts.append(answer.reason)
    texts.append(caplog.text)
    assert caplog.records  # the SDK did log at DEBUG
    for text in texts:
        assert KEY not in text


def test_missing_key_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMUnavailable, match="needs an API key: set ANTHROPIC_API_KEY"):
        load_bridge("anthropic")


def test_auto_picks_anthropic_only_with_a_key_and_the_sdk_honours_the_base_url_env(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert resolve_bridge("auto")[0] == "offline"
    assert load_bridge("auto").name == "offline"
    with FakeAnthropic([Reply()]) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        bridge = load_bridge("auto", timeout=2.0)
        assert bridge.name == "anthropic" and bridge.model == DEFAULT_MODEL
        assert ask_prompt(bridge).text == GOOD
        assert len(server.messages) == 1


def test_default_model_is_in_the_sdks_model_list_and_not_deprecated():
    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types import Model

    literal = typing.get_args(Model)[0]
    assert DEFAULT_MODEL in typing.get_args(literal)
    assert DEFAULT_MODEL not in DEPRECATED_MODELS


# --------------------------------------------------------------------------- the command line


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "scoretool", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_cli_bad_key_is_one_line_before_any_captioning(tmp_path):
    from .helpers import make_clip

    clip = make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2)
    with FakeAnthropic([Reply()], key="the-right-key") as server:
        proc = run_cli("plan", clip, "-o", tmp_path / "in.plan.json", "--caption-model", tmp_path / "no-such-model",
                       env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["Error: the Anthropic API rejected the key (401): check ANTHROPIC_API_KEY"]
    assert KEY not in proc.stderr + proc.stdout
    assert [r["method"] for r in server.requests] == ["GET"]  # the preflight, before the captioner was even loaded
    assert not (tmp_path / "in.plan.json").exists()


def test_cli_auto_with_a_key_writes_anthropic_prompts_into_the_plan(tmp_path, tiny_models):
    from .helpers import make_clip

    clip = make_clip(tmp_path / "in.mp4", colours=("red", "blue"), seconds=2.5)
    with FakeAnthropic([Reply(text="A red screen that turns blue."), Reply(text="A red then blue screen."), Reply(text=GOOD)]) as server:
        proc = run_cli("plan", clip, "-o", tmp_path / "in.plan.json", "--caption-model", tiny_models["blip"], "--json",
                       env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "in.plan.json").read_text())
    assert data["settings"]["bridge"] == "anthropic" and data["settings"]["llm_model"] == DEFAULT_MODEL
    assert all(s["prompt_source"] == "anthropic" and s["prompt"] == GOOD for s in data["scenes"])
    assert KEY not in (tmp_path / "in.plan.json").read_text() + proc.stdout + proc.stderr


# --------------------------------------------------------------------------- demo


def answer_by_step(n: int, body: dict) -> Reply:
    """What a well-behaved model might say to each of the bridge's three kinds of request."""
    text = body["messages"][-1]["content"]
    if text.startswith("Frame captions"):
        return Reply(text=text.splitlines()[1].removeprefix("- ").capitalize() + ".")
    if text.startswith("Scene captions"):
        return Reply(text="A sunny cartoon countryside, from an open meadow to a forest stream, a bird and a rabbit's burrow.")
    scene = text.split("This scene: ")[-1].split("Picture: ")[-1].lower()
    return Reply(text={"a s": "Flowing pastoral orchestral with harp, flute and strings, gentle 84 BPM, in D major",
                       "a b": "Playful pastoral orchestral with pizzicato strings, piccolo and harp, lively 96 BPM, in D major",
                       "a r": "Curious pastoral orchestral with bassoon, pizzicato strings and harp, 84 BPM, in B minor"}
                 .get(scene[:3], "Serene pastoral orchestral with strings, flute and harp, gentle 84 BPM, in D major"))


def then(first: list[Reply]):
    """The scripted replies first, then well-behaved answers."""
    return lambda n, body: first[n] if n < len(first) else answer_by_step(n, body)


def demo() -> None:
    """What each fault does to the four scenes of big_buck_bunny_0_30.webm (real SDK, local server)."""
    long_tail = (", opening with a solo oboe over soft sustained violas, then warm horns and a harp glissando bring "
                 "a rising theme that blooms into a lush tutti")
    faults = {
        "success": answer_by_step,
        "429 then success": then([Reply(429, headers={"retry-after": "0.1"}, error_type="rate_limit_error")]),
        "500 forever": [Reply(500)],
        "529 overloaded forever": [Reply(529, error_type="overloaded_error")],
        "slow (3 s, timeout 0.5 s)": [Reply(delay=3.0)],
        "empty answer": [Reply(text="")],
        "over-long answer": lambda n, body: Reply(text=answer_by_step(n, body).text + long_tail
                                                  if "This scene:" in body["messages"][-1]["content"] else
                                                  answer_by_step(n, body).text),
        "chatter": [Reply(text="Sure! I'd be happy to help with this scene.")],
        "401 bad key": "401",
    }
    for name, script in faults.items():
        key = "the-right-key" if script == "401" else KEY
        with FakeAnthropic(answer_by_step if script == "401" else script, key=key) as server:
            plan, notes = make_plan(), Notes()
            started = time.perf_counter()
            try:
                write_prompts(plan, LLMBridge(llm(server, timeout=0.5, retries=2, backoff=0.05)), notes)
                outcome = None
            except LLMUnavailable as exc:
                outcome = f"stopped: {exc}"
            elapsed = time.perf_counter() - started
        print(f"\n## {name}: {len(server.messages)} request(s), {elapsed:.1f} s")
        if outcome:
            print(f"   {outcome}")
            continue
        print(f"   summary [{plan.video_summary_source}]: {plan.video_summary}")
        for s in plan.scenes:
            print(f"   {s.number}. caption [{s.caption_source}]: {s.caption}")
            print(f"      prompt [{s.prompt_source}]: {s.prompt}")
            if s.fallback_reason:
                print(f"      why: {s.fallback_reason}")


if __name__ == "__main__":
    demo()
