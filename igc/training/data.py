"""Training and validation tiles, held in memory as uint8 arrays.

Photos are decoded and resized once, up front: decoding with PIL per sample was measured 4×
slower than the model step it feeds. Batches are then cut with vectorised numpy indexing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igc.errors import ImageError, UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
# Scales at which every training photo is kept: downscaled photos look more like the
# detail-dense 32×32 CIFAR images and add variety at no decode cost per sample.
SCALES = (1.0, 1 / 2, 1 / 3, 1 / 4)
# Evaluation sets: training on them would make the benchmark meaningless.
FORBIDDEN = ("kodak", "test_first1000")


def default_data_dir() -> Path:
    """The shared data folder, `../shared/data` relative to the project root."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.is_dir():
            return cand
    return Path("../shared/data")


def default_train_paths() -> list[Path]:
    d = default_data_dir()
    return [
        d / "photos/bsds500/train",
        d / "photos/bsds500/val",
        d / "photos/sun_hays80",
        d / "cifar10/train_first4000.npz",
    ]


def default_val_path() -> Path:
    return default_data_dir() / "photos/bsds500/test"


def _check_allowed(path: Path) -> None:
    low = str(path).lower()
    for bad in FORBIDDEN:
        if bad in low:
            raise UsageError(
                f"{path} is an evaluation set ({bad}); it must not be used for training"
            )


def _load_rgb(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:  # PIL raises many unrelated types for bad files
        raise ImageError(f"cannot read image {path}: {exc}") from exc


def _image_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def _load_npz(path: Path) -> np.ndarray:
    try:
        arr = np.load(path)["images"]
    except Exception as exc:
        raise ImageError(
            f"cannot read {path}: expected an .npz with an `images` array ({exc})"
        ) from exc
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ImageError(f"{path}: `images` must be uint8 (N,H,W,3), got {arr.dtype} {arr.shape}")
    return arr


@dataclass
class TileSource:
    """Photos (at several scales) and small-image stacks from which random tiles are cut."""

    tile: int
    photos: list[np.ndarray] = field(default_factory=list)
    stacks: list[np.ndarray] = field(default_factory=list)

    @property
    def description(self) -> dict:
        return {
            "photo_arrays": len(self.photos),
            "photo_pixels": int(sum(p.shape[0] * p.shape[1] for p in self.photos)),
            "small_images": int(sum(len(s) for s in self.stacks)),
        }


def load_training(paths: list[Path | str], tile: int, scales=SCALES) -> TileSource:
    """Read every photo once and keep it at each scale that still fits a tile."""
    from PIL import Image

    src = TileSource(tile)
    for raw in paths:
        path = Path(raw)
        _check_allowed(path)
        if not path.exists():
            raise UsageError(f"training data not found: {path}")
        if path.suffix == ".npz":
            arr = _load_npz(path)
            if arr.shape[1] < tile or arr.shape[2] < tile:
                raise UsageError(
                    f"{path}: images {arr.shape[1:3]} are smaller than the tile {tile}"
                )
            src.stacks.append(arr)
            continue
        for f in _image_files(path):
            im = _load_rgb(f)
            for s in scales:
                w, h = round(im.width * s), round(im.height * s)
                if w < tile or h < tile:
                    continue
                scaled = im if s == 1 else im.resize((w, h), Image.LANCZOS)
                src.photos.append(np.asarray(scaled, dtype=np.uint8))
    if not src.photos and not src.stacks:
        raise UsageError("no training images found in " + ", ".join(map(str, paths)))
    return src


class Sampler:
    """Draws batches of random tiles (random photo, scale, position, horizontal flip).

    A fraction `small_fraction` of each batch comes from the small-image stacks (CIFAR), cut at
    tile-aligned positions as the benchmark cuts them. Photos are drawn in proportion to their
    number of possible tile positions, so large photos are not under-sampled.
    """

    def __init__(self, src: TileSource, rng: np.random.Generator, small_fraction: float = 0.25):
        self.src, self.rng, self.tile = src, rng, src.tile
        self.small_fraction = small_fraction if src.stacks else 0.0
        if not src.photos:
            self.small_fraction = 1.0
        t = self.tile
        weights = np.array([(p.shape[0] - t + 1) * (p.shape[1] - t + 1) for p in src.photos], float)
        self.photo_p = weights / weights.sum() if len(weights) else weights

    def batch(self, n: int) -> np.ndarray:
        """(n, tile, tile, 3) uint8."""
        t, rng = self.tile, self.rng
        out = np.empty((n, t, t, 3), np.uint8)
        n_small = round(n * self.small_fraction)
        if n_small:
            sizes = np.array([len(s) for s in self.src.stacks])
            which = rng.choice(len(sizes), n_small, p=sizes / sizes.sum())
            for k, si in enumerate(which):
                stack = self.src.stacks[si]
                img = stack[rng.integers(len(stack))]
                y = rng.integers(img.shape[0] // t) * t
                x = rng.integers(img.shape[1] // t) * t
                out[k] = img[y : y + t, x : x + t]
        if n > n_small:
            idx = rng.choice(len(self.src.photos), n - n_small, p=self.photo_p)
            for k, pi in enumerate(idx, start=n_small):
                p = self.src.photos[pi]
                y = rng.integers(p.shape[0] - t + 1)
                x = rng.integers(p.shape[1] - t + 1)
                out[k] = p[y : y + t, x : x + t]
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
        return out[rng.permutation(n)]


def load_validation(path: Path | str, tile: int, count: int = 1024, seed: int = 1234) -> np.ndarray:
    """A fixed set of `count` tiles from the photos under `path` (deterministic for a seed).

    Tiles are tile-aligned, as the benchmark cuts full-resolution photos.
    """
    path = Path(path)
    _check_allowed(path)
    if not path.exists():
        raise UsageError(f"validation data not found: {path}")
    if path.suffix == ".npz":
        imgs = list(_load_npz(path))
    else:
        imgs = [np.asarray(_load_rgb(f), np.uint8) for f in _image_files(path)]
    t = tile
    cells = [
        (i, y, x)
        for i, im in enumerate(imgs)
        for y in range(0, im.shape[0] - t + 1, t)
        for x in range(0, im.shape[1] - t + 1, t)
    ]
    if not cells:
        raise UsageError(f"no {t}×{t} validation tiles in {path}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cells), min(count, len(cells)), replace=False)
    return np.stack(
        [
            imgs[cells[j][0]][cells[j][1] : cells[j][1] + t, cells[j][2] : cells[j][2] + t]
            for j in sorted(pick)
        ]
    )
