"""Loading ImageGPT checkpoints (HuggingFace format) as igc `Model`s.

A model spec is one of: the name of a model shipped inside the package (the default), a local
folder with `config.json` + `model.safetensors`, or a HuggingFace hub id, which is resolved through
the local HuggingFace cache (and the hub, where reachable). Only safetensors weights are read: a
pickle checkpoint could run code, so it is refused.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from igc.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "igc-rgb16-v2"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def packaged_models() -> list[str]:
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def resolve(spec: str | None) -> tuple[str, Path]:
    """Model spec -> (id to record in files, local folder holding its files)."""
    spec = spec or DEFAULT_MODEL
    if (WEIGHTS_DIR / spec / "config.json").is_file() and "/" not in spec:
        return spec, WEIGHTS_DIR / spec
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # "~user/..." for a user with no home: treat as a plain relative path
        path = Path(spec)
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model {spec!r} is a file; pass the folder holding config.json "
                             "and model.safetensors")
        return path.resolve().name, path
    if spec == DEFAULT_MODEL:
        raise ModelError(f"the default model {DEFAULT_MODEL!r} is not installed in {WEIGHTS_DIR}; "
                         "reinstall igc-codec or pass --model")
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return spec, _from_hub(spec)
    raise ModelError(f"model {spec!r} not found: no such folder, and not a hub id like "
                     f"'openai/imagegpt-small' (shipped models: {', '.join(packaged_models()) or 'none'})")


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(f"loading {repo_id!r} from the hub needs huggingface_hub "
                         "(pip install 'igc-codec[model]')") from None
    try:
        folder = snapshot_download(
            repo_id, allow_patterns=["*.json", "*.safetensors"],
            local_files_only=os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"),
        )
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot get model {repo_id!r}: not in the local HuggingFace cache and "
                         f"the hub could not be reached ({reason[:160]})") from None
    return Path(folder)


_downloads = contextvars.ContextVar("igc_allow_download", default=False)


def downloads_allowed() -> bool:
    """Whether a file's header may make igc download its model from the hub (`allowing
    downloads`); a model the user names (`--model`) is always fetched."""
    return _downloads.get()


@contextmanager
def allowing_downloads(allow: bool) -> Iterator[None]:
    """Inside the block, a hub id in a file's header may be downloaded (`--allow-download`)."""
    token = _downloads.set(bool(allow))
    try:
        yield
    finally:
        _downloads.reset(token)


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local HuggingFace cache's copy of `repo_id`, without any network access; None if
    there is none (or no huggingface_hub)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"],
                                      local_files_only=True))
    except Exception:  # not cached (huggingface_hub raises several types)
        return None


def read_config(folder: Path) -> dict:
    from igc.core.files import read_json

    config_path = folder / "config.json"
    if not os.path.lexists(config_path):
        raise ModelError(f"model folder {folder} has no config.json")
    config = read_json(config_path, ModelError)  # a regular file of at most 1 MiB
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    if config.get("model_type") != "imagegpt":
        raise ModelError(f"{folder} holds a {config.get('model_type', 'unknown')!r} model; igc "
                         "needs an ImageGPT checkpoint (model_type 'imagegpt')")
    return config


def read_tensors(folder: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        hint = (f" (found {', '.join(pickles)}: pickle weights are refused because loading them "
                "can run code; convert them to safetensors)") if pickles else ""
        raise ModelError(f"model folder {folder} has no .safetensors weights{hint}")
    from igc.core.files import check_regular

    tensors = {}
    for file in files:
        check_regular(file, ModelError)  # a FIFO would block the open forever
        try:
            tensors.update(load_file(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"cannot read weights {file}: {exc}") from None
    return tensors


# Config fields that change what the weights compute without changing their shapes, at the
# values every model had before they entered the fingerprint (ImageGPT's defaults, which both
# shipped models use). A field is mixed into the digest only when it differs from its value here,
# so those models keep their fingerprints and the files that record them keep decoding.
COMPUTATION_DEFAULTS = {"layer_norm_epsilon": 1e-5, "activation_function": "quick_gelu",
                        "scale_attn_weights": True}


def fingerprint_of(tensors: dict, config: dict | None = None) -> str:
    """Digest of the weights' values, independent of how the file was serialised, and of the
    config fields that change the computation (`COMPUTATION_DEFAULTS`): the same weights with
    another epsilon or activation are another model, refused as such rather than failing the
    pixel checksum after a whole decode."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].float().contiguous()
        digest.update(key.removeprefix("transformer.").encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    changed = {field: config.get(field, default) for field, default in COMPUTATION_DEFAULTS.items()
               if config is not None and config.get(field, default) != default}
    if changed:
        digest.update(json.dumps(changed, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def load_checked(folder: Path) -> tuple[dict, dict]:
    """(config, tensors) of a model folder, each config field and weight checked
    (igc.models.checks): a broken folder fails here with one line naming what is wrong."""
    from igc.models.checks import check_config, check_weights

    config = read_config(folder)
    check_config(config, folder)
    tensors = read_tensors(folder)
    check_weights(tensors, config, folder)
    return config, tensors


TOTAL_BITS = 24  # igc.models.integer.TOTAL_BITS: numerics 2's frequencies sum to 2**24


class IntegerState:
    """A numerics-2 engine and its state for one batch (lane) of sequences."""

    __slots__ = ("engine", "inner")

    def __init__(self, engine, inner) -> None:
        self.engine, self.inner = engine, inner


class ImageGPTModel:
    """An ImageGPT checkpoint behind igc's `Model` protocol."""

    description = ("ImageGPT next-token probabilities (default: igc's own model; or a shipped id, "
                   "local folder or hub id)")

    def __init__(self, spec: str | None = None, threads: int | None = None) -> None:
        import torch

        from igc.models.runtime import ImageGPTRuntime

        self.name, self.folder = resolve(spec)
        self.spec = spec or self.name  # as the user gave it, for messages
        self.config, tensors = load_checked(self.folder)
        self.fingerprint = fingerprint_of(tensors, self.config)
        self.runtime = ImageGPTRuntime(self.config, tensors)
        self.context_length = self.runtime.n_positions
        self.vocab_size = self.runtime.vocab_size - 1  # the start token is never predicted
        self.threads = threads
        self._torch = torch

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)}: pip install 'igc-codec[model]'"
        return None

    numerics_supported = (0, 1, 2)  # 0: the torch step of format versions 1-2; 1: fused floats

    @cached_property
    def numerics(self) -> int:
        """What new files record: 2 (integers, igc.models.integer) for every model it computes
        (quick-GELU ones), else 1 (the fused float step)."""
        return 2 if self.runtime.act_name == "quick_gelu" else 1

    @cached_property
    def integer_model(self):
        """The quantized model numerics 2 computes with (derived from the weights at load, the
        same integers on every machine)."""
        from igc.models.integer import quantize

        return quantize(self.runtime)

    def engine(self, name: str | None = None):
        """The numerics-2 engine `name` (default: the process's, igc.models.engines), made once."""
        from igc.models.engines import current_engine, make_engine

        name = name or current_engine()
        cache = self.__dict__.setdefault("_engines", {})
        if name not in cache:
            cache[name] = make_engine(name, self.integer_model)
        return cache[name]

    def batched_engine(self, numerics: int) -> bool:
        """True when one state should hold every tile of a batch (a GPU engine): numerics 2's
        frequencies do not depend on how tiles are grouped, so lanes may be ignored."""
        from igc.models.engines import current_engine

        return numerics == 2 and current_engine() == "cuda"

    def state_bytes(self, rows: int, length: int, numerics: int, engine: str | None = None
                    ) -> int:
        """Host memory that `start(rows, length, numerics)` allocates, from the model's sizes
        alone (nothing is allocated; an upper bound within a few percent, tests compare it with
        the arrays `start` makes). `engine`: numerics 2's engine (default: the process's); the
        cuda engine keeps its state on the GPU and counts nothing here."""
        r = self.runtime
        heads, d, c, nl = r.n_head, r.head_dim, r.n_embd, r.n_layer
        inner = r.layers[0].fc_w.shape[1] if r.layers else 4 * c
        vocab = r.vocab_size
        rows_heads = rows * heads
        # plus what every engine adds: a step's float64 probabilities, fixed scratch buffers
        return self._state_bytes(rows, length, numerics, engine, heads, d, c, nl, inner, vocab,
                                 rows_heads) + rows * vocab * 8 + 8 * max(length, inner, vocab)

    @staticmethod
    def _state_bytes(rows, length, numerics, engine, heads, d, c, nl, inner, vocab,
                     rows_heads) -> int:
        if numerics == 2:
            from igc.models.engines import current_engine

            engine = engine or current_engine()
            if engine == "cuda":
                return 0
            if engine == "reference":  # int64 keys, shifts and values
                return nl * rows_heads * length * (2 * d + 1) * 8 + rows * (c + vocab) * 8
            # cpu: int16 keys in blocks of 16 positions, int8 shifts, int16 values (dv padded)
            d2, dv, blocks = (d + 1) // 2, -(-d // 16) * 16, -(-length // 16)
            per_row_head = blocks * d2 * 32 * 2 + length + (length + 1) // 2 * dv * 2 * 2
            width = max(3 * c, inner, vocab) + 16
            return nl * rows_heads * per_row_head + rows * (c + 2 * width + 3) * 8
        if numerics == 1:  # bf16 keys in blocks of 64 positions and bf16 values
            per_row_head = (-(-length // 64) * 64 + length) * d * 2
            return nl * rows_heads * per_row_head + rows * (8 * c + inner + vocab) * 4
        return nl * rows_heads * length * d * 2 * 4 + rows * (4 * c + inner + vocab) * 4

    @cached_property
    def parameters(self) -> int:
        r = self.runtime
        return sum(t.numel() for t in (r.wte, r.wpe, r.ln_f, r.lm_head)) + sum(
            t.numel() for layer in r.layers for t in vars(layer).values())

    @property
    def tokenizer(self) -> str:
        """The tokenizer its vocabulary calls for: 513 tokens are a palette (OpenAI's
        checkpoints), anything else is coded as subpixels (and refused unless it has 257)."""
        return "palette" if self.runtime.vocab_size == 513 else "subpixel"

    @cached_property
    def clusters(self) -> np.ndarray | None:
        """A palette model's colour clusters (its preprocessor_config.json); None otherwise."""
        if self.tokenizer != "palette":
            return None
        from igc.core.palette import load_clusters

        return load_clusters(self.folder)

    @classmethod
    def spec_for(cls, model_id: str, fingerprint: str) -> str:
        """The spec that loads the model a file names: the shipped or $IGC_MODEL_PATH folder
        with the header's fingerprint, else the id itself if it is a hub id."""
        from igc.models.catalog import locate, search_description

        try:
            found = locate(model_id, fingerprint)
        except ImportError:  # no torch/safetensors to read candidates: the loader says what to add
            return model_id
        if found is not None:
            return str(found)
        if HUB_ID.match(model_id) and not model_id.startswith((".", "/", "~")):
            if downloads_allowed():
                return model_id  # a hub id: from the HuggingFace cache, or downloaded
            cached = _cached_snapshot(model_id)  # the cache only: a file cannot make igc
            if cached is not None:               # reach the network unasked
                return str(cached)
            raise ModelError(f"this file needs model {model_id!r} (fingerprint {fingerprint}), "
                             f"which is {search_description()}, nor in the local HuggingFace "
                             "cache; igc downloads a file's model only when asked: pass "
                             f"--allow-download, or --model {model_id} to fetch it")
        raise ModelError(f"this file needs model {model_id!r} (fingerprint {fingerprint}), which "
                         f"is {search_description()}; pass --model with its folder, or add the "
                         "folder that holds it to IGC_MODEL_PATH")

    def log_probs(self, sequences: np.ndarray, chunk: int = 64) -> np.ndarray:
        torch = self._torch
        out = []
        for i in range(0, len(sequences), chunk):
            ids = torch.from_numpy(np.ascontiguousarray(sequences[i : i + chunk]))
            out.append(torch.log_softmax(self.runtime.logits(ids), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, sequences.shape[1], self.vocab_size))

    def start(self, batch: int, length: int | None = None, numerics: int | None = None):
        """`numerics`: which step computes the probabilities (a file's header names it);
        default: what new files use (`numerics`)."""
        numerics = self.numerics if numerics is None else numerics
        if numerics == 2:
            engine = self.engine()
            return IntegerState(engine, engine.start(batch, length))
        return self.runtime.start(batch, length, numerics)

    def step(self, state, tokens: np.ndarray) -> np.ndarray:
        from igc.models.runtime import FusedState, one_thread

        if isinstance(state, IntegerState):
            freqs = state.engine.step(state.inner, np.ascontiguousarray(tokens, dtype=np.int64))
            return np.ldexp(freqs.astype(np.float64), -TOTAL_BITS)  # exact: integers < 2**53
        if isinstance(state, FusedState):
            return self.runtime.step_probs(state, np.ascontiguousarray(tokens, dtype=np.int64))
        torch = self._torch
        with one_thread():  # the probabilities too must not depend on the thread count
            logits = self.runtime.step(state, torch.from_numpy(np.ascontiguousarray(tokens)))
            return torch.softmax(logits, dim=-1).double().numpy()
