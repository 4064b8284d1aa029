"""The models shipped inside the package, and finding the weights an `.igc` header names.

A file records its model's id and weight fingerprint. To decode it without `--model`, the
fingerprint is looked up first among the shipped models (so files of an earlier default still
find their weights after the default changes), then among the model folders listed in
`$IGC_MODEL_PATH` (so a file coded with a local folder finds it on any machine that has that
folder on its path). Finding the weights is not all: a numerics 0 or 1 (float) file decodes only
on the kind of CPU that wrote it, a numerics 2 file anywhere (docs/numerics.md). The fingerprint,
not the id, decides: two folders may share a name, never their weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from igc.core.palette import (
    PREPROCESSOR_CONFIG,
    clusters_fingerprint,
    combined_fingerprint,
    load_clusters,
)
from igc.errors import ModelError
from igc.models.folders import (
    DEFAULT_MODEL,
    PHOTO_MODEL,
    WEIGHTS_DIR,
    fingerprint_of,
    read_config,
    read_tensors,
)

CATALOG = WEIGHTS_DIR / "catalog.json"
MODEL_PATH_VARIABLE = "IGC_MODEL_PATH"


@dataclass(frozen=True)
class ShippedModel:
    id: str
    fingerprint: str
    parameters: int
    purpose: str
    folder: Path

    @property
    def default(self) -> bool:
        return self.id == DEFAULT_MODEL

    @property
    def photographs(self) -> bool:
        """Whether the default codes photographs with this model (igc.compressors.photo_split)."""
        return self.id == PHOTO_MODEL

    @property
    def file_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.safetensors"))

    def to_dict(self) -> dict:
        return {"id": self.id, "default": self.default, "photographs": self.photographs,
                "parameters": self.parameters,
                "file_bytes": self.file_bytes, "fingerprint": self.fingerprint,
                "purpose": self.purpose}


def shipped_models() -> list[ShippedModel]:
    """The catalog's models whose weights are installed, the default first, then the model the
    default codes photographs with."""
    try:
        entries = json.loads(CATALOG.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the shipped-model catalog {CATALOG}: {exc}") from None
    models = [ShippedModel(name, e["fingerprint"], e["parameters"], e["purpose"], WEIGHTS_DIR / name)
              for name, e in entries.items() if (WEIGHTS_DIR / name / "config.json").is_file()]
    return sorted(models, key=lambda m: (not m.default, not m.photographs))


def model_path() -> list[Path]:
    """The folders listed in $IGC_MODEL_PATH (separated like $PATH), in order."""
    raw = os.environ.get(MODEL_PATH_VARIABLE, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _candidates(root: Path, model_id: str) -> list[Path]:
    """Model folders under one $IGC_MODEL_PATH entry, the one named like the file's model first:
    the entry itself when it is a model folder, else its subfolders."""
    if not root.is_dir():
        return []
    if (root / "config.json").is_file():
        return [root]
    try:
        subfolders = sorted(p for p in root.iterdir() if (p / "config.json").is_file())
    except OSError:
        return []
    return sorted(subfolders, key=lambda p: p.name != model_id)


def _fingerprints_of_folder(folder: Path) -> set[str]:
    """What a file coded with this folder's model records: the weights' fingerprint, and for a
    palette model (colour clusters beside the weights) that combined with the clusters'."""
    try:
        own = fingerprint_of(read_tensors(folder), read_config(folder, ("imagegpt", "igc-pixel")))
    except ModelError:
        return set()  # an unreadable folder on the path is not the one we look for
    if not (folder / PREPROCESSOR_CONFIG).is_file():
        return {own}
    try:
        clusters = clusters_fingerprint(load_clusters(folder))
    except ModelError:
        return {own}
    return {own, combined_fingerprint(own, clusters)}


def locate(model_id: str, fingerprint: str) -> Path | None:
    """The folder holding the weights with this fingerprint: shipped first, then
    $IGC_MODEL_PATH; None if neither has them."""
    shipped = [m for m in shipped_models() if m.fingerprint == fingerprint]
    if shipped:
        return min(shipped, key=lambda m: m.id != model_id).folder
    for root in model_path():
        for folder in _candidates(root, model_id):
            if fingerprint in _fingerprints_of_folder(folder):
                return folder
    return None


def search_description() -> str:
    """Where `locate` looked, for error messages."""
    roots = model_path()
    shipped = f"not among the models shipped with igc ({', '.join(m.id for m in shipped_models())})"
    if not roots:
        return f"{shipped}, and {MODEL_PATH_VARIABLE} is not set"
    return f"{shipped}, nor in {MODEL_PATH_VARIABLE}={os.pathsep.join(map(str, roots))}"
