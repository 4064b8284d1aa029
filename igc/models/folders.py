"""Model folders: where a model spec's files are, and reading them checked.

A model spec is one of: the name of a model shipped inside the package (the default), a local
folder with `config.json` + `model.safetensors`, or a HuggingFace hub id, which is resolved through
the local HuggingFace cache (and the hub, where reachable). Only safetensors weights are read: a
pickle checkpoint could run code, so it is refused. The fingerprint of a folder's weights is what
files record; igc.models.catalog finds a folder by it, igc.models.imagegpt loads one.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from igc.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "igc-rgb16-v3"
# what the default codes whole photographs with (igc.compressors.photo_split: 768×512 pixels and
# up) when no model is named: as good there as DEFAULT_MODEL in well under half its time
# (docs/results.md), and worse on smaller images, which keep DEFAULT_MODEL
PHOTO_MODEL = "igc-rgb16-pixel-v2"
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


def cached_snapshot(repo_id: str) -> Path | None:
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


def read_config(folder: Path, model_types: tuple[str, ...] = ("imagegpt",)) -> dict:
    """A model folder's config.json, refused unless its model_type is one of `model_types`: the
    codec codes ImageGPT checkpoints; the trainer also reads its pixel models'."""
    from igc.core.files import read_json

    config_path = folder / "config.json"
    if not os.path.lexists(config_path):
        raise ModelError(f"model folder {folder} has no config.json")
    config = read_json(config_path, ModelError)  # a regular file of at most 1 MiB
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    kind = config.get("model_type", "unknown")
    if kind in model_types:
        return config
    if kind == "igc-pixel":  # igc.models.pixel_network.PIXEL_MODEL_TYPE
        raise ModelError(f"{folder} holds a pixel model (igc train --arch pixel), which igc's "
                         "own model loader runs, not this one (HuggingFace's ImageGPT cannot)")
    wanted = ("an ImageGPT checkpoint (model_type 'imagegpt')" if model_types == ("imagegpt",)
              else "model_type " + " or ".join(map(repr, model_types)))
    raise ModelError(f"{folder} holds a {kind!r} model; igc needs {wanted}")


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
    if config is not None and config.get("model_type") == "igc-pixel":
        # its weights' shapes do not fix how the width splits into attention heads
        changed["pixel_heads"] = config.get("heads")
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
