"""int8 linear layers on the CPU (fbgemm), shared by MusicGen's decoder and BLIP.

`Int8Linear` runs fbgemm's dynamic int8 GEMM (`quantized.linear_dynamic` on weights prepacked per
output channel), the fastest CPU path measured (4096x1024 at batch 2: ~10x fp32). fbgemm picks one
activation scale for the whole input, so a row's result would depend on the other rows in the batch
(other scenes, other images): each row is first mapped onto [0, 1] (u = (x - lo) / span), so every
input fbgemm sees has min 0 and max 1 and gets the same scale, and y = span * (W u) + lo * rowsum(W)
is each row's product with its own (per-token) activation scale: bit for bit the same whatever shares
its batch, and more accurate than one scale for all. Activations are quantized to 7 bits
(`reduce_range`): on CPUs without VNNI, fbgemm's 16-bit pair sums saturate with 8-bit ones.

`quantize_linears(module, ...)` replaces a module's `nn.Linear` layers by `Int8Linear`s for good,
so the fp32 weights can go: a model held in int8 costs its int8 bytes. Where the model folder's
checkpoint is given, each fp32 weight is read from the file (`checkpoints.Checkpoint`) rather than
from the loaded parameter, whose pages would otherwise become resident in the process just to be
quantized.
"""

from __future__ import annotations

import contextlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping

import torch

from . import memory

TRIM_EVERY = 24  # layers quantized between handing freed memory back (musicgen-small: ~10 per decoder)

def int8_unavailable_reason() -> str | None:
    """Why this torch build cannot run `Int8Linear`, or None where it can."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return f"this torch has no fbgemm int8 kernels (engines: {', '.join(torch.backends.quantized.supported_engines)})"
    for name in ("linear_prepack", "linear_dynamic", "linear_unpack"):
        try:
            getattr(torch.ops.quantized, name)
        except (AttributeError, RuntimeError):
            return f"this torch has no torch.ops.quantized.{name}"
    return None


@contextlib.contextmanager
def _engine(name: str):
    """The quantized engine the weights are prepacked for (the packed weights keep it)."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def _per_channel(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (out, in) as a qint8 tensor with one symmetric scale per output channel."""
    weight = weight.detach().float().cpu()
    scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
    zero = torch.zeros(weight.shape[0], dtype=torch.long)
    return torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)


class Int8Linear(torch.nn.Module):
    """y = x @ weight.T (+ bias) with int8 weights (per output channel) and per-row int8 activations.
    Build one with `quantize(weight, bias)` or `fused([...])`; `Int8Linear(q, bias)` takes a per-channel
    qint8 weight, or an `int8_kernel.RowsWeight` already packed for the kernel (with its `rowsum`).
    `on_kernel=True`: the layer runs on `int8_kernel`'s kernel where that runs here (else on fbgemm): made
    for MusicGen's decoding step (a few rows at a time), it is also faster than fbgemm's path on
    thousands (BLIP's vision encoder), its per-row quantization one pass instead of ~8 torch ops."""

    # No float weight to read: code that casts a layer's input to its `.weight`'s dtype when that is
    # a tensor (T5's feed-forward, for the `wo` it keeps in fp32) leaves the input as it is.
    weight = None

    def __init__(self, q: torch.Tensor, bias: torch.Tensor | None = None, rowsum: torch.Tensor | None = None,
                 *, on_kernel: bool = False):  # fmt: skip
        from .int8_kernel import RowsWeight, unavailable_reason

        super().__init__()
        with warnings.catch_warnings():  # quantized tensors are deprecated; a torch without them fails here
            warnings.simplefilter("ignore")
            if rowsum is None:
                rowsum = q.dequantize().sum(dim=1)
            self.register_buffer("rowsum", rowsum, persistent=False)
            self.register_buffer("bias", None if bias is None else bias.detach().float().cpu(), persistent=False)
            self._packed = self._rows = None  # the weight packed for fbgemm, or for int8_kernel
            if isinstance(q, RowsWeight):
                self._rows, shape = q, (q.out_features, q.in_features)
            else:
                shape = tuple(q.shape)
                if on_kernel and unavailable_reason() is None:
                    self._rows = RowsWeight(q.int_repr(), q.q_per_channel_scales(), rowsum, self.bias)
                else:
                    with _engine("fbgemm"):
                        self._packed = torch.ops.quantized.linear_prepack(q, None)
        self.out_features, self.in_features = shape

    @property
    def on_kernel(self) -> bool:
        """Whether this layer runs on `int8_kernel`'s kernel (else on fbgemm)."""
        return self._rows is not None

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.Tensor | None = None, *, on_kernel: bool = False) -> Int8Linear:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(_per_channel(weight), bias, on_kernel=on_kernel)

    def quantized_weight(self) -> torch.Tensor:
        """The per-channel qint8 weight (unpacked from fbgemm's layout, or the kernel's)."""
        with warnings.catch_warnings(), _engine("fbgemm"):
            warnings.simplefilter("ignore")
            if self._rows is not None:
                scales = self._rows.channel_scales().double()
                zero = torch.zeros(self.out_features, dtype=torch.long)
                return torch._make_per_channel_quantized_tensor(self._rows.int8(), scales, zero, 0)
            return torch.ops.quantized.linear_unpack(self._packed)[0]

    def state(self) -> dict[str, torch.Tensor]:
        """Plain tensors that `from_state` rebuilds this layer from (to keep it on disk)."""
        q = self.quantized_weight()
        state = {"int8": q.int_repr(), "scale": q.q_per_channel_scales(), "rowsum": self.rowsum}
        return state if self.bias is None else {**state, "bias": self.bias}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], *, on_kernel: bool = False) -> Int8Linear:
        from .int8_kernel import RowsWeight, unavailable_reason

        bias = state.get("bias")
        if on_kernel and unavailable_reason() is None:  # packed straight from the plain int8 tensor
            return cls(RowsWeight(state["int8"], state["scale"], state["rowsum"], bias), bias, rowsum=state["rowsum"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zero = torch.zeros(state["int8"].shape[0], dtype=torch.long)
            q = torch._make_per_channel_quantized_tensor(state["int8"], state["scale"].double(), zero, 0)
        return cls(q, state.get("bias"), rowsum=state["rowsum"], on_kernel=on_kernel)

    @classmethod
    def fused(cls, layers: list[Int8Linear]) -> Int8Linear:
        """One layer for several bias-free ones that read the same input (q, k, v; the LM heads): the
        same results as each alone (per-row activations, per-channel weights), one GEMM; on the
        few-row kernel if they all are."""
        from .int8_kernel import RowsWeight

        rowsum = torch.cat([layer.rowsum for layer in layers])
        if all(layer.on_kernel for layer in layers):
            return cls(RowsWeight.joined([layer._rows for layer in layers]), rowsum=rowsum)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = [layer.quantized_weight() for layer in layers]
            q = torch._make_per_channel_quantized_tensor(
                torch.cat([p.int_repr() for p in parts]),
                torch.cat([p.q_per_channel_scales() for p in parts]),
                torch.cat([p.q_per_channel_zero_points() for p in parts]),
                0,
            )
        return cls(q, rowsum=rowsum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) fp32. Few, in-place ops: this runs ~150 times a decoding step."""
        return self._rows_of(x, self._linear)

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """GELU (erf) of `forward(x)`; on the kernel, in the same pass (its erf within 1.5e-7 of torch's)."""
        if self._rows is not None:
            return self._rows_of(x, lambda rows: self._rows.linear(rows, gelu=True))
        return torch.nn.functional.gelu(self.forward(x))

    def _rows_of(self, x: torch.Tensor, linear: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if x.dim() == 2:
            return linear(x)
        return linear(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], self.out_features)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        if self._rows is not None:
            return self._rows.linear(x)
        lo = x.amin(-1, keepdim=True)
        span = x.amax(-1, keepdim=True).sub_(lo).clamp_min_(1e-30)
        y = torch.ops.quantized.linear_dynamic((x - lo).div_(span), self._packed, True)
        y = y.mul_(span).addcmul_(lo, self.rowsum)  # in place: fbgemm's output is ours
        return y if self.bias is None else y.add_(self.bias)


@contextlib.contextmanager
def builders():
    """A thread per core to build `Int8Linear`s on: fbgemm's prepacking (~40 ms for a 4096x1024 layer,
    most of a load from the int8 store) runs on one core per layer. The warning filters and the
    quantized engine are process-wide: set here, once, so the layers' own (nested) settings of them in
    the threads cannot leave them changed or race each other."""
    with warnings.catch_warnings(), _engine("fbgemm"), ThreadPoolExecutor(
        max_workers=max(1, torch.get_num_threads()), thread_name_prefix="scoretool-int8"
    ) as pool:
        warnings.simplefilter("ignore")
        yield pool


def fuse_groups(groups: list[list[Int8Linear]]) -> list[Int8Linear]:
    """`Int8Linear.fused` of each group, built on `builders`."""
    with builders() as pool:
        return list(pool.map(Int8Linear.fused, groups))


def quantize_linears(
    module: torch.nn.Module,
    read_weight: Callable[[str], torch.Tensor | None] = lambda name: None,
    stored: Mapping[str, dict[str, torch.Tensor]] | None = None,
    skip: Callable[[str], bool] = lambda name: False,
    on_kernel: bool = False,
) -> dict[str, Int8Linear]:
    """Replace every `nn.Linear` under `module` by an `Int8Linear`, in place; returns them by name.
    `stored.get(name)`: a layer's `Int8Linear.state()` kept from an earlier quantization (used where
    its shape fits); else `read_weight(name)` gives its fp32 weight from elsewhere (the checkpoint), or
    None to take the layer's own. Layers `skip(name)` names stay as they are. `on_kernel`: see
    `Int8Linear`. The layers are built a few at a time on `builders`."""
    targets = [(n, c) for n, c in module.named_modules() if type(c) is torch.nn.Linear and not skip(n)]

    def build(target: tuple[str, torch.nn.Linear]) -> Int8Linear:
        name, child = target
        state = (stored or {}).get(name)
        if state is not None and tuple(state["int8"].shape) == tuple(child.weight.shape):
            return Int8Linear.from_state(state, on_kernel=on_kernel)
        weight = read_weight(name)
        if weight is None or weight.shape != child.weight.shape:
            weight = child.weight
        return Int8Linear.quantize(weight, child.bias, on_kernel=on_kernel)

    layers = {}
    with builders() as pool:
        for start in range(0, len(targets), TRIM_EVERY):
            chunk = targets[start : start + TRIM_EVERY]
            for (name, _), layer in zip(chunk, pool.map(build, chunk)):
                parent, _, attr = name.rpartition(".")
                setattr(module.get_submodule(parent), attr, layer)
                layers[name] = layer
            memory.trim()  # each layer's temporaries, before they add up to hundreds of MB
    return layers
