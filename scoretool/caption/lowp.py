"""BLIP in a lower precision: bf16 or int8 on the CPU, fp16 on a CUDA GPU, with fallbacks that say why.

BLIP captioning has two parts of very different shapes. The vision encoder (ViT-B/16 at 384 px for
blip-base) runs once per image on 577 patch tokens: large matrix products, bound by arithmetic. The
text decoder (BERT-base with cross-attention to those tokens) runs ~30 steps of one token per image:
small products, bound by reading the weights. So each precision says what each part runs in (see
`PARTS`). int8 replaces every Linear layer by `int8.Int8Linear` (per-channel int8 weights, per-row
int8 activations, the layer MusicGen's decoder uses, on scoretool's int8 kernel where it runs: see
`int8_kernel`): a quarter of the weight bytes for the decoder, VNNI int8 products for the encoder
(whose MLP then applies its GELU in the kernel's pass, `fused`); the fp32 weights are read from the
checkpoint's file as each is quantized, so they never take memory.

A precision that cannot run here (a missing op, an API a future torch drops, int8 on a GPU) falls
back to the next (int8 -> bf16 -> fp32, fp16 -> fp32) with the reason logged at WARNING; the
caller gets the precision that really runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ScoreToolError
from ..files import first_line

log = logging.getLogger("scoretool")

FALLBACK = {"int8": "bf16", "bf16": "fp32", "fp16": "fp32"}


@dataclass(frozen=True)
class Parts:
    """What the vision encoder and the text decoder run in: "fp32", "fp16", "bf16" or "int8" (Linear
    layers dynamically quantized to int8, activations in fp32)."""

    vision: str
    decoder: str


PARTS = {
    "fp32": Parts(vision="fp32", decoder="fp32"),
    "fp16": Parts(vision="fp16", decoder="fp16"),
    "bf16": Parts(vision="bf16", decoder="bf16"),
    "int8": Parts(vision="int8", decoder="int8"),
}
ToInt8 = Callable[..., None]  # (module, its name in the model, on_kernel=...): its Linear layers made int8 in place


class PrecisionUnavailable(RuntimeError):
    """This precision cannot run on this device (the message says why)."""


def activation_dtype(part: str):
    """The dtype a part takes its input in and gives its output in."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(part, torch.float32)


def convert_part(module, part: str, device: str, to_int8: Callable[[object], None]):
    """`module` (on `device`, in fp32) converted to `part`; returns the module to use. `to_int8(module)`
    makes its Linear layers int8 in place."""
    import torch

    if part == "fp32":
        return module
    if part == "fp16":
        if not device.startswith("cuda"):
            raise PrecisionUnavailable(f"fp16 runs on a CUDA GPU only, not on {device}")
        return module.to(torch.float16)
    if part == "bf16":
        return module.to(torch.bfloat16)
    if part == "int8":
        if device != "cpu":
            raise PrecisionUnavailable(f"int8 (dynamic quantization) runs on the CPU only, not on {device}")
        from ..int8 import int8_unavailable_reason

        missing = int8_unavailable_reason()
        if missing:
            raise PrecisionUnavailable(missing)
        to_int8(module)
        return module
    raise PrecisionUnavailable(f"unknown precision {part!r}")


def convert(model, precision: str, device: str, to_int8: ToInt8):
    """A loaded `BlipForConditionalGeneration` (fp32, on `device`) converted in place to `precision`:
    each part as `PARTS` says, the vision encoder's attention (and in int8 its MLP) fused (see `fused`),
    and where the parts' activations differ, the encoder's output cast to the decoder's dtype.
    `to_int8(module, name, on_kernel=True)` makes a part's Linear layers int8 in place (`int8_store.in_place`)."""
    from ..int8_kernel import attention_unavailable_reason
    from .fused import fuse_vision_attention, fuse_vision_mlp

    parts = PARTS[precision]
    for name in ("vision_model", "text_decoder"):
        part = getattr(parts, "vision" if name == "vision_model" else "decoder")
        int8_in_place = lambda module: to_int8(module, name, on_kernel=True)  # noqa: E731
        setattr(model, name, convert_part(getattr(model, name), part, device, int8_in_place))
    if precision != "fp32":
        fuse_vision_attention(model.vision_model, bf16_kernel=parts.vision == "int8" and attention_unavailable_reason() is None)
    if parts.vision == "int8":
        fuse_vision_mlp(model.vision_model)
    to_decoder = activation_dtype(parts.decoder)
    if activation_dtype(parts.vision) != to_decoder:

        def cast(module, args, output):
            output.last_hidden_state = output.last_hidden_state.to(to_decoder)
            return output

        model.vision_model.register_forward_hook(cast)
    return model


def load_dtype(precision: str):
    """The dtype to load the checkpoint's weights in for `precision`: where both parts run in one half
    precision, that one (cast as each weight is read: converting a loaded fp32 model took 2.4 s of a
    run), else fp32 (int8 reads its weights from the checkpoint as it quantizes them)."""
    import torch

    parts = PARTS[precision]
    return activation_dtype(parts.vision) if parts.vision == parts.decoder else torch.float32


def load_in(
    load: Callable[[object], object],
    precision: str,
    device: str,
    check: Callable[[object, str], None],
    to_int8: ToInt8,
) -> tuple[object, str]:
    """`load(dtype)` the model (in `load_dtype(precision)`) and convert it to `precision`, falling back
    (int8 -> bf16 -> fp32) where conversion or `check(model, precision)` (a real captioning call) fails.
    Returns the model and the precision it runs in. fp32 is converted and checked by nothing: it is the
    reference path."""
    model = load(load_dtype(precision))
    while precision != "fp32":
        try:
            converted = convert(model, precision, device, to_int8)
            check(converted, precision)
            return converted, precision
        except ScoreToolError:
            raise
        except Exception as exc:  # a missing op or API shows as any error class; the message says which
            fallback = FALLBACK[precision]
            log.warning("caption model: %s does not run here (%s); using %s", precision, first_line(exc), fallback)
            precision = fallback
            model = load(load_dtype(precision))  # conversion works in place: start again from the weights
    return model, precision
