"""Context mode 4's model side: which parameters an encoder tunes to one image, how it tunes
them, and the model a decoder derives from the changes a file carries.

The tuned parameters are every RMS norm's gain and every linear layer's bias: a few thousand
numbers that still move every layer (docs/design.md, "Tuning the model to the image"). The
encoder runs Adam on the image's own windows and rounds each change to a multiple of
2**-STEP_SHIFT; only those multiples reach the file. The tuning itself need not repeat on
another machine: the decoder never runs it. What must repeat is the derived model, and
`ImageGPTModel.with_changes` adds the multiples in float64 and lets numerics 2 quantize the
result, which gives the same integers everywhere.
"""

from __future__ import annotations

import numpy as np

# changes are multiples of 2**-STEP_SHIFT (exact in binary, so base + k * step is one rounding)
STEP_SHIFT = 4
# the encoder's settings, measured on Kodak in docs/design.md: Adam at this rate, batches of
# BATCH windows drawn with SEED, one epoch's worth of batches, and an L1 pull of every change
# towards zero (soft thresholding by LEARNING_RATE * L1 a step) so that a parameter moves only
# where the image keeps pushing it, and the changes cost fewer bytes to send
LEARNING_RATE = 1e-2
L1 = 0.3
BATCH = 32
EPOCHS = 1.0
SEED = 0
# a decoder refuses a multiple beyond this (2**15 steps: at igc's step of 2**-4 a parameter 2**11
# from its base): no image moves one that far, and it keeps the derived float32 weights finite
MAX_MULTIPLE = 1 << 15


def tuned_names(n_layer: int) -> list[str]:
    """An ImageGPT's tuned parameters in file order (checkpoint names without
    "transformer.")."""
    return [*_block_names(n_layer), "ln_f.weight"]


def _block_names(n_layer: int) -> list[str]:
    names = []
    for i in range(n_layer):
        names += [f"h.{i}.ln_1.weight", f"h.{i}.attn.c_attn.bias", f"h.{i}.attn.c_proj.bias",
                  f"h.{i}.ln_2.weight", f"h.{i}.mlp.c_fc.bias", f"h.{i}.mlp.c_proj.bias"]
    return names


def pixel_tuned_names(layers: int) -> list[str]:
    """A pixel model's (igc.models.pixel_network) tuned parameters in file order: its body's,
    as ImageGPT's, then each channel's head's norms and biases (R's head has its output norm
    only; G's and B's their MLP's norm and biases too)."""
    heads = ["heads.0.ln_out.weight"]
    for c in (1, 2):
        heads += [f"heads.{c}.ln.weight", f"heads.{c}.fc.bias", f"heads.{c}.proj.bias",
                  f"heads.{c}.ln_out.weight"]
    return [*_block_names(layers), *heads]


def _pixel(model) -> bool:
    """Whether `model` is a pixel model (its config.json's type: igc.models.pixel imports this
    module, so it is not imported here)."""
    from igc.models.pixel_network import PIXEL_MODEL_TYPE

    return getattr(model, "config", {}).get("model_type") == PIXEL_MODEL_TYPE


def names_of(model) -> list[str]:
    """`model`'s tuned parameters in file order: which ones is a function of the model alone
    (its kind and depth), so a file carries their changes and nothing that names them."""
    if _pixel(model):
        return pixel_tuned_names(model.cfg.layers)
    return tuned_names(int(model.config.get("n_layer", 0)))


def _key(model, name: str) -> str:
    """The checkpoint's key of a tuned parameter (HF checkpoints prefix "transformer.")."""
    return name if name in model.tensors else f"transformer.{name}"


def _tensor(model, name: str):
    return model.tensors[_key(model, name)]


def sizes(model) -> list[int]:
    """How many numbers each tuned parameter holds, in file order."""
    return [_tensor(model, n).numel() for n in names_of(model)]


def derivable(model) -> str | None:
    """Why a decoder cannot derive a tuned copy of `model`, in words; None where it can: it must
    keep its checkpoint's tensors (igc's ImageGPT loader does) and have every tuned one."""
    if not hasattr(model, "with_changes") or not hasattr(model, "tensors"):
        return (f"model {model.name!r} cannot take tuned parameters (igc's loader of ImageGPT "
                "and pixel models can)")
    names = names_of(model)
    missing = [n for n in names if n not in model.tensors
               and f"transformer.{n}" not in model.tensors]
    if missing:
        return f"model {model.name!r} has no {missing[0]!r} to tune"
    return None


def tunable(model) -> str | None:
    """Why an encoder cannot tune `model`, in words; None where it can: a model a decoder can
    derive, whose config is the network igc trains (igc.models.network)."""
    from igc.models.network import config_problems

    reason = derivable(model)
    if reason is None and not _pixel(model) and (problems := config_problems(model.config)):
        reason = f"model {model.name!r} is not igc's ImageGPT network ({problems[0]})"
    return reason


def tune(model, tokens: np.ndarray, coded: np.ndarray, start_token: int) -> np.ndarray:
    """The image's changes as int64 multiples of 2**-STEP_SHIFT, flat in file order: Adam on
    the windows `tokens` (windows, positions), the loss on the `coded` positions, bf16 autocast
    where the CPU computes bf16 natively."""
    import torch

    from igc.models.network import ImageGPT, config_of, cpu_has_fast_bf16

    if _pixel(model):
        from igc.models.pixel_network import PixelGPT

        net = PixelGPT(model.cfg)
    else:
        net = ImageGPT(config_of(model.config))
    state = {}
    for key in net.state_dict():
        short = key.removeprefix("transformer.")
        state[key] = _tensor(model, short).detach().float()
    net.load_state_dict(state)
    names = names_of(model)
    by_name = dict(net.named_parameters())
    params = [by_name[n if n in by_name else f"transformer.{n}"] for n in names]
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    before = [p.detach().clone() for p in params]
    tokens_t = torch.from_numpy(np.ascontiguousarray(tokens, np.int64))
    mask = torch.from_numpy(np.ascontiguousarray(coded, bool))
    inputs = torch.cat([torch.full_like(tokens_t[:, :1], start_token), tokens_t[:, :-1]], 1)
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(params, lr=LEARNING_RATE)
    for _ in range(max(1, int(EPOCHS * len(tokens_t) / BATCH))):
        idx = torch.randint(len(tokens_t), (BATCH,), generator=gen)
        with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
            logits = net(inputs[idx])
        logp = torch.log_softmax(logits.float(), -1).gather(-1, tokens_t[idx, :, None])
        m = mask[idx]
        loss = -(logp[..., 0] * m).sum() / m.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, b in zip(params, before, strict=True):
                d = p - b
                p.copy_(b + d.sign() * (d.abs() - LEARNING_RATE * L1).clamp(min=0))
    with torch.no_grad():
        change = torch.cat([(p - b).double().ravel() for p, b in zip(params, before, strict=True)])
    return torch.round(torch.ldexp(change, torch.tensor(STEP_SHIFT))).to(torch.int64).numpy()


def changed(tensors: dict, changes: dict[str, np.ndarray]) -> dict:
    """A copy of float32 `tensors` with `changes` added (keyed as the tensors are): each sum taken
    in float64 and rounded to float32 once, so every machine derives the same weights, which
    numerics 2 then quantizes as it quantizes any checkpoint. What `with_changes` of every model
    kind computes."""
    import torch

    out = dict(tensors)
    for key, change in changes.items():
        base = out[key].detach().double().numpy()
        out[key] = torch.from_numpy((base + change).astype(np.float32))
    return out


def apply(model, multiples: np.ndarray, shift: int = STEP_SHIFT):
    """`model` with the flat `multiples` of 2**-shift added to its tuned parameters."""
    changes, at = {}, 0
    for name, size in zip(names_of(model), sizes(model), strict=True):
        part = np.ldexp(multiples[at : at + size].astype(np.float64), -shift)
        changes[_key(model, name)] = part.reshape(tuple(_tensor(model, name).shape))
        at += size
    return model.with_changes(changes)
