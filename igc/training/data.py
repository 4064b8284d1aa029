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
    """BSDS500 train/val and Sun-Hays 80 (JPEGs), CIFAR-10 train_first4000, then Urban100 and
    McMaster (lossless, no JPEG block statistics), in the order arm (b) of the data ablation
    used (docs/training.md, "Data ablation"): the two lossless sets helped on Kodak, the
    photographs igc is judged on, and cost a little on CIFAR-10 and on the JPEG validation tiles."""
    d = default_data_dir()
    return [
        d / "photos/bsds500/train",
        d / "photos/bsds500/val",
        d / "photos/sun_hays80",
        d / "cifar10/train_first4000.npz",
        d / "photos/urban100",
        d / "photos/mcmaster",
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


# --jpeg-downscale's range: 1 keeps JPEGs as published; past 16 a 1024-pixel photo is 64 pixels
JPEG_DOWNSCALE_RANGE = (1.0, 16.0)


def jpeg_downscale_problem(factor: float) -> str | None:
    """Why `factor` is not a --jpeg-downscale, or None if it is one."""
    low, high = JPEG_DOWNSCALE_RANGE
    if not low <= factor <= high:
        return f"--jpeg-downscale must be between {low:g} and {high:g}, got {factor:g}"
    return None


def _shrunk_note(factor: float) -> str:
    """What an error about missing tiles adds when JPEGs were shrunk, since that may be why."""
    return f" (JPEGs shrunk by {factor:g})" if factor != 1.0 else ""


def load_rgb(path: Path, jpeg_downscale: float = 1.0):
    """The image as RGB; a JPEG-coded one first shrunk by `jpeg_downscale` (see below)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            lossy = im.format in ("JPEG", "MPO")  # MPO: a camera's JPEG with extra frames
    except Exception as exc:  # PIL raises many unrelated types for bad files
        raise ImageError(f"cannot read image {path}: {exc}") from exc
    if lossy and jpeg_downscale != 1.0:
        rgb = _downscale(rgb, jpeg_downscale)
    return rgb


def _downscale(im, factor: float):
    """`im` shrunk by `factor` with Lanczos: a factor of 2 or more averages JPEG's 8×8 blocks
    and chroma steps away, so a JPEG teaches textures without its artifacts, which the lossless
    photographs igc is judged on (Kodak) do not have (training.md, "JPEG photos at half size")."""
    from PIL import Image

    w, h = max(1, round(im.width / factor)), max(1, round(im.height / factor))
    return im.resize((w, h), Image.LANCZOS)


def image_files(path: Path) -> list[Path]:
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
    if not len(arr):
        raise ImageError(f"{path}: `images` holds no images")
    return arr


@dataclass
class TileSource:
    """Photos (at several scales) and small-image stacks from which random tiles are cut."""

    tile: int
    photos: list[np.ndarray] = field(default_factory=list)
    stacks: list[np.ndarray] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)  # photos that hold no tile at any scale

    @property
    def description(self) -> dict:
        return {
            "photo_arrays": len(self.photos),
            "photo_pixels": int(sum(p.shape[0] * p.shape[1] for p in self.photos)),
            "small_images": int(sum(len(s) for s in self.stacks)),
            "photos_too_small": len(self.too_small),
        }

    def too_small_note(self, jpeg_downscale: float = 1.0) -> str | None:
        """One line naming the photos left out for holding no tile, or None: a folder that
        trains on fewer photos than it holds should say so, not look complete."""
        if not self.too_small:
            return None
        n = len(self.too_small)
        return (f"note: {n} photo{'s' if n > 1 else ''} smaller than a {self.tile}×{self.tile} "
                f"tile left out of training{_shrunk_note(jpeg_downscale)} "
                f"(first: {self.too_small[0]})")


def load_training(paths: list[Path | str], tile: int, scales=SCALES,
                  jpeg_downscale: float = 1.0) -> TileSource:
    """Read every photo once and keep it at each scale that still fits a tile; a JPEG is first
    shrunk by `jpeg_downscale`, its scales then taken of that."""
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
        files, before = image_files(path), len(src.photos)
        for f in files:
            im, kept = load_rgb(f, jpeg_downscale), len(src.photos)
            for s in scales:
                w, h = round(im.width * s), round(im.height * s)
                if w < tile or h < tile:
                    continue
                scaled = im if s == 1 else im.resize((w, h), Image.LANCZOS)
                src.photos.append(np.asarray(scaled, dtype=np.uint8))
            if len(src.photos) == kept:
                src.too_small.append(str(f))
        if files and len(src.photos) == before:
            # every image smaller than a tile: a mistake (a wrong folder, a factor too large),
            # which would otherwise train on the other paths as if this one were there
            raise UsageError(f"{path}: no image holds a {tile}×{tile} tile"
                             f"{_shrunk_note(jpeg_downscale)}")
    if not src.photos and not src.stacks:
        raise UsageError("no training images found in " + ", ".join(map(str, paths)))
    return src


class Sampler:
    """Draws batches of random tiles (random photo, scale, position, horizontal flip).

    A fraction `small_fraction` of each batch comes from the small-image stacks (CIFAR), cut at
    tile-aligned positions as the benchmark cuts them. Photos are drawn in proportion to their
    number of possible tile positions, so large photos are not under-sampled.

    Every image lives in one flat buffer (`TileSource.photos` become views into it, so memory is
    not doubled), and a batch is one call of a compiled copy loop over the drawn corners: on a
    GPU the model step is fast enough that a Python loop over tiles on the training thread is a
    visible share of each step (`scripts/train_speed.py` measures both).
    """

    def __init__(self, src: TileSource, rng: np.random.Generator, small_fraction: float = 0.25):
        self.src, self.rng, self.tile = src, rng, src.tile
        self.small_fraction = small_fraction if src.stacks else 0.0
        if not src.photos:
            self.small_fraction = 1.0
        t = self.tile
        self._flat, photo_starts, stack_starts = _pack(src)
        self._rows = np.array([p.shape[0] for p in src.photos], np.int64)
        self._cols = np.array([p.shape[1] for p in src.photos], np.int64)
        self._photo_starts = photo_starts
        weights = ((self._rows - t + 1) * (self._cols - t + 1)).astype(float)
        self.photo_p = weights / weights.sum() if len(weights) else weights
        self._photo_cdf = np.cumsum(self.photo_p)
        sizes = np.array([len(s) for s in src.stacks], float)
        self._stack_cdf = np.cumsum(sizes / sizes.sum()) if len(sizes) else sizes
        self._stack_starts = stack_starts
        self._stack_shapes = np.array([st.shape[:3] for st in src.stacks], np.int64).reshape(-1, 3)
        from igc.training.kernels import cut_tiles  # numba: imported once, not per batch

        self._cut = cut_tiles

    def batch(self, n: int) -> np.ndarray:
        """(n, tile, tile, 3) uint8: the small-image tiles first, then the photo tiles (their
        order within a batch does not change its mean loss)."""
        n_small = round(n * self.small_fraction)
        small, photo = self._small_corners(n_small), self._photo_corners(n - n_small)
        corner = np.concatenate([small[0], photo[0]])
        stride = np.concatenate([small[1], photo[1]])
        flip = self.rng.random(n) < 0.5  # horizontal mirror, per tile
        out = np.empty((n, self.tile, self.tile, 3), np.uint8)
        self._cut(self._flat, corner, stride, flip, out)
        return out

    def _draw(self, cdf: np.ndarray, n: int) -> np.ndarray:
        """`n` indices drawn with the probabilities whose running sum is `cdf`."""
        return np.minimum(np.searchsorted(cdf, self.rng.random(n), side="right"), len(cdf) - 1)

    def _photo_corners(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat offsets of `n` random tile corners in the photos, and their row strides."""
        t, rng = self.tile, self.rng
        idx = self._draw(self._photo_cdf, n)
        y = rng.integers(self._rows[idx] - t + 1)
        x = rng.integers(self._cols[idx] - t + 1)
        stride = self._cols[idx] * 3
        return self._photo_starts[idx] + y * stride + x * 3, stride

    def _small_corners(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The same for tile-aligned corners in the small-image stacks."""
        t, rng = self.tile, self.rng
        if not n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        which = self._draw(self._stack_cdf, n)
        count, h, w = self._stack_shapes[which].T  # images, height, width of each draw's stack
        img = rng.integers(count)
        y = rng.integers(h // t) * t
        x = rng.integers(w // t) * t
        stride = w * 3
        return self._stack_starts[which] + img * h * stride + y * stride + x * 3, stride


def _pack(src: TileSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photos then stacks in one flat uint8 buffer, and each array's start; the source's arrays
    are replaced by views into the buffer."""
    arrays = list(src.photos) + list(src.stacks)
    sizes = np.array([a.size for a in arrays], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    flat = np.empty(int(sizes.sum()), np.uint8)
    views = []
    for array, start in zip(arrays, starts, strict=True):
        view = flat[start : start + array.size].reshape(array.shape)
        view[...] = array
        views.append(view)
    n = len(src.photos)
    src.photos[:], src.stacks[:] = views[:n], views[n:]
    return flat, starts[:n], starts[n:]


def load_validation(path: Path | str, tile: int, count: int = 1024, seed: int = 1234,
                    jpeg_downscale: float = 1.0) -> np.ndarray:
    """A fixed set of `count` tiles from the photos under `path` (deterministic for a seed).

    Tiles are tile-aligned, as the benchmark cuts photos; a JPEG is first shrunk by
    `jpeg_downscale`, as in training.
    """
    path = Path(path)
    _check_allowed(path)
    if not path.exists():
        raise UsageError(f"validation data not found: {path}")
    if path.suffix == ".npz":
        imgs = list(_load_npz(path))
    else:
        imgs = [np.asarray(load_rgb(f, jpeg_downscale), np.uint8) for f in image_files(path)]
    t = tile
    cells = [
        (i, y, x)
        for i, im in enumerate(imgs)
        for y in range(0, im.shape[0] - t + 1, t)
        for x in range(0, im.shape[1] - t + 1, t)
    ]
    if not cells:
        raise UsageError(f"no {t}×{t} validation tiles in {path}{_shrunk_note(jpeg_downscale)}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cells), min(count, len(cells)), replace=False)
    return np.stack(
        [
            imgs[cells[j][0]][cells[j][1] : cells[j][1] + t, cells[j][2] : cells[j][2] + t]
            for j in sorted(pick)
        ]
    )
