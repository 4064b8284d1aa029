"""Checks of an ImageGPT model folder at load time, before the runtime sees it.

A hand-edited or corrupted folder must fail with one line naming what is wrong, not deep inside
the runtime (an AttributeError for a string where a number belongs, a KeyError "zero
probability" from NaN weights, an IndexError past the position embedding, or an out-of-memory
for `n_positions` 10⁹). Checked: every config field the runtime reads (type and range), every
weight's shape against the config (`n_positions` against the position embedding's rows
included), no layer beyond `n_layer`, and finite weights.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from igc.errors import ModelError

# least value of each required integer field
REQUIRED_INTS = {"n_embd": 1, "n_head": 1, "n_layer": 1, "n_positions": 1, "vocab_size": 2}
# the activations the runtime implements (igc.engines.runtime.ACTIVATIONS; a test keeps them equal)
ACTIVATION_NAMES = ("gelu", "gelu_new", "gelu_pytorch_tanh", "quick_gelu", "relu")
UNSUPPORTED_FLAGS = ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")
LAYER_KEY = re.compile(r"^h\.(\d+)\.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field_error(where: Path, field: str, what: str, value: Any) -> ModelError:
    return ModelError(f"{where}/config.json: {field!r} must be {what}, got {value!r}")


def check_config(config: Any, where: Path) -> None:
    """Raise ModelError naming the first config field the runtime could not use."""
    if not isinstance(config, dict):
        raise ModelError(f"{where}/config.json must hold a JSON object, got "
                         f"{type(config).__name__}")
    for field, least in REQUIRED_INTS.items():
        if field not in config:
            raise ModelError(f"{where}/config.json lacks {field!r}")
        value = config[field]
        if not _is_int(value) or value < least:
            what = "a positive integer" if least == 1 else f"an integer of at least {least}"
            raise _field_error(where, field, what, value)
    if config["n_embd"] % config["n_head"]:
        raise ModelError(f"{where}/config.json: 'n_embd' {config['n_embd']} is not a multiple "
                         f"of 'n_head' {config['n_head']}")
    inner = config.get("n_inner")
    if inner is not None and (not _is_int(inner) or inner < 1):
        raise _field_error(where, "n_inner", "null or a positive integer", inner)
    eps = config.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, int | float) or isinstance(eps, bool) or not (
            math.isfinite(eps) and eps > 0):
        raise _field_error(where, "layer_norm_epsilon", "a positive finite number", eps)
    act = config.get("activation_function", "quick_gelu")
    if act not in ACTIVATION_NAMES:
        raise _field_error(where, "activation_function",
                           f"one of {', '.join(ACTIVATION_NAMES)}", act)
    if not isinstance(config.get("scale_attn_weights", True), bool):
        raise _field_error(where, "scale_attn_weights", "true or false",
                           config["scale_attn_weights"])
    for flag in UNSUPPORTED_FLAGS:
        if config.get(flag, False) is not False:
            raise _field_error(where, flag, "false (igc's runtime does not implement it)",
                               config[flag])


def expected_shapes(config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """Weight name (without 'transformer.') -> (shape the config implies, the fields that say so)."""
    c, vocab = config["n_embd"], config["vocab_size"]
    inner = config.get("n_inner") or 4 * c
    width = f"n_embd {c}"
    shapes = {
        "wte.weight": ((vocab, c), f"vocab_size {vocab}, {width}"),
        "wpe.weight": ((config["n_positions"], c), f"n_positions {config['n_positions']}, {width}"),
        "ln_f.weight": ((c,), width),
        "lm_head.weight": ((vocab - 1, c), f"vocab_size {vocab}, {width}"),
    }
    mlp = f"{width}, n_inner {inner}"
    for i in range(config["n_layer"]):
        shapes.update({
            f"h.{i}.ln_1.weight": ((c,), width),
            f"h.{i}.attn.c_attn.weight": ((c, 3 * c), width),
            f"h.{i}.attn.c_attn.bias": ((3 * c,), width),
            f"h.{i}.attn.c_proj.weight": ((c, c), width),
            f"h.{i}.attn.c_proj.bias": ((c,), width),
            f"h.{i}.ln_2.weight": ((c,), width),
            f"h.{i}.mlp.c_fc.weight": ((c, inner), mlp),
            f"h.{i}.mlp.c_fc.bias": ((inner,), mlp),
            f"h.{i}.mlp.c_proj.weight": ((inner, c), mlp),
            f"h.{i}.mlp.c_proj.bias": ((c,), width),
        })
    return shapes


def check_weights(tensors: dict, config: dict, where: Path) -> None:
    """Raise ModelError naming the first weight that is missing, misshapen, beyond n_layer, or
    not finite. `config` must have passed `check_config`."""
    weights = {key.removeprefix("transformer."): value for key, value in tensors.items()}
    shapes = expected_shapes(config)
    for key, (shape, fields) in shapes.items():
        if key not in weights:
            raise ModelError(f"model weights lack {key!r}: not a complete ImageGPT checkpoint")
        got = tuple(weights[key].shape)
        if got == shape:
            continue
        if key == "wpe.weight" and got[1:] == shape[1:]:
            raise ModelError(f"{where}/config.json: 'n_positions' is {config['n_positions']} "
                             f"but the position embedding 'wpe.weight' has {got[0]} rows")
        raise ModelError(f"{where}: weight {key!r} has shape {got}; the config ({fields}) "
                         f"needs {shape}")
    layers = {int(m.group(1)) for key in weights if (m := LAYER_KEY.match(key))}
    if layers and max(layers) >= config["n_layer"]:
        raise ModelError(f"{where}: the weights hold layer h.{max(layers)} but "
                         f"config.json's 'n_layer' is {config['n_layer']}")
    for key in shapes:
        if not bool(weights[key].isfinite().all()):
            raise ModelError(f"{where}: weight {key!r} holds NaN or infinite values")
