"""What identifies a loaded model, apart from how it is sampled.

A `ModelSpec` names one set of weights in memory: the model (alias, Hugging Face id or folder), the
device it runs on and the precision its weights run in. Loading the same spec twice gives the same
model, so everything that shares models (a render's factory, the batch model server) keys them by
their spec, and the cache keys a clip by `spec.identity()`. `Sampling` is how a call draws its
tokens (guidance, temperature, top-k): it is passed per call, so one loaded model serves every
preset's settings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, get_args

from . import interrupts

T = TypeVar("T")

# What `--precision` takes; `auto` is resolved per device (see `scoretool.precision`) before any
# spec is made, so a spec always names the precision that runs.
Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
CONCRETE_PRECISIONS: tuple[str, ...] = tuple(p for p in PRECISIONS if p != "auto")


@dataclass(frozen=True)
class ModelSpec:
    """One loaded model: `model` as the user named it, a concrete `device` ("cpu", "cuda:1", "mps")
    and a concrete `precision` (never "auto")."""

    model: str
    device: str
    precision: str = "fp32"

    def __post_init__(self):
        if self.precision not in CONCRETE_PRECISIONS:
            raise ValueError(f"a ModelSpec needs a concrete precision ({', '.join(CONCRETE_PRECISIONS)}), not {self.precision!r}")

    def identity(self) -> str:
        """What makes this model's outputs what they are: the weights (a folder by its files' sizes
        and times, see `cache.model_identity`), the device and the precision. The clip cache key and
        the batch model server both use this."""
        from .cache import key, model_identity
        from .models import resolve

        return key("model", model_identity(resolve(self.model)), self.device, self.precision)

    def describe(self) -> str:
        return f"{self.model} on {self.device} in {self.precision}"


@dataclass(frozen=True)
class Sampling:
    """How MusicGen draws its tokens; passed with every generate call."""

    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250


def model_spec(settings, role: str) -> tuple[ModelSpec, str]:
    """The model of `role` ("music" or "caption") that resolved `Settings` ask for (see
    `Settings.resolved`), with why its precision was chosen (for the console and `--json`)."""
    from .models import pick_device
    from .precision import choose

    device = pick_device(settings.device)
    model = settings.music_model if role == "music" else settings.caption_model
    choice = choose(settings.precision, device, role)
    return ModelSpec(model, device, choice.precision), choice.why


def music_spec(settings) -> ModelSpec:
    return model_spec(settings, "music")[0]


def caption_spec(settings) -> ModelSpec:
    return model_spec(settings, "caption")[0]


def _wait(loading: Future):
    """The load's result; a Ctrl-C or SIGTERM that reached the process while it loads ends the wait,
    even one whose exception was lost (the load may then wait for ever on an import lock the main
    thread was left holding: `interrupts.raise_if_requested`)."""
    while True:
        interrupts.raise_if_requested()
        try:
            return loading.result(timeout=0.2)
        except TimeoutError:
            continue


class Loaded(Generic[T]):
    """A model factory `spec -> model` that loads each spec once. `preload(spec)` starts loading in
    a thread, to hide the load behind work that needs no model (the analysis decode, say); the
    next call for that spec waits for it and raises what the load raised."""

    def __init__(self, load: Callable[[ModelSpec], T]):
        self._load = load
        self._models: dict[ModelSpec, T] = {}
        self._loading: dict[ModelSpec, Future] = {}
        self._lock = threading.Lock()

    def preload(self, spec: ModelSpec) -> None:
        with self._lock:
            if spec in self._models or spec in self._loading:
                return
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoretool-load")
            self._loading[spec] = pool.submit(self._load, spec)
            pool.shutdown(wait=False)

    def __call__(self, spec: ModelSpec) -> T:
        with self._lock:
            if spec in self._models:
                return self._models[spec]
            loading = self._loading.pop(spec, None)
        model = _wait(loading) if loading else self._load(spec)
        with self._lock:
            return self._models.setdefault(spec, model)

    def settle(self) -> None:
        """Wait for loads still running (their errors are dropped: nobody asked for the model). Called
        on the way out, so no loading thread is still inside torch when the interpreter shuts down."""
        if interrupts.requested():
            return  # Ctrl-C or SIGTERM: the CLI ends the process without waiting for the load
        with self._lock:
            loading, self._loading = list(self._loading.values()), {}
        for future in loading:
            future.exception()
