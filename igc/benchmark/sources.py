"""Where bench images come from: files, directories, .npz arrays, or the bundled gallery.

`collect` turns command-line paths into `ImageRef`s (nothing is decoded yet); `gallery` is the
default source that works offline on a fresh machine (the colour photographs bundled with
scikit-image, plus matplotlib's when it is installed); `pick` draws a seeded sample; and
`center_crop` is the one preprocessing bench may apply, to every compressor alike.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from igc.core.image import load_image, resolve_max_pixels
from igc.core.options import checked_seed
from igc.core.types import Image, LoadedImage
from igc.errors import ImageError, UsageError

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".gif",
)

# Colour photographs bundled with installed packages: (package, folder inside it, files).
# scikit-image (a dependency) bundles nine; its synthetic images (logo, colour wheel, chessboard,
# phantom) and grayscale ones are left out. matplotlib (the `plot` extra) adds a tenth when
# installed. `gallery` also checks that each file is there and is 8-bit RGB.
GALLERY_SOURCES = (
    (
        "skimage",
        "data",
        (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "hubble_deep_field.jpg",
            "ihc.png",
            "motorcycle_left.png",
            "motorcycle_right.png",
            "retina.jpg",
            "rocket.jpg",
        ),
    ),
    ("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
)


@dataclass(frozen=True)
class ImageRef:
    """One bench input, not yet decoded: a file, or entry `index` of an .npz `images` array."""

    name: str
    path: str
    index: int | None = None

    def load(self, strict: bool = False, max_pixels: int | None = None) -> LoadedImage:
        if self.index is None:
            return load_image(self.path, strict=strict, max_pixels=max_pixels, name=self.name)
        # the array is held to $IGC_MAX_PIXELS (as `collect` did), the image to max_pixels
        images = _npz_images(self.path, _mtime(self.path), resolve_max_pixels())
        if not 0 <= self.index < len(images):
            raise ImageError(f"{self.name}: {self.path} holds only {len(images)} images")
        pixels = images[self.index]
        h, w = pixels.shape[:2]
        cap = resolve_max_pixels(max_pixels)
        if h * w > cap:
            raise ImageError(f"{self.name}: {w}×{h} = {h * w} pixels exceeds the limit of {cap}")
        return LoadedImage(
            name=self.name, pixels=np.array(pixels, copy=True), note="", source=self.path
        )


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _npy_header(archive: Any, path: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the archive's `images` array, from its .npy header alone."""
    member = "images.npy" if "images.npy" in archive.zip.namelist() else "images"
    with archive.zip.open(member) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ImageError(f"{path}: 'images' is a .npy array of version {version}, which "
                             "igc does not read")
    return shape, dtype


def _check_declared(path: str, shape: tuple[int, ...], dtype: np.dtype, cap: int) -> None:
    """Refuse an `images` array by what its header declares, before it is allocated."""
    if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3:
        raise ImageError(f"{path}: 'images' must be uint8 of shape (N, H, W, 3), got {dtype} {shape}")
    if shape[1] < 1 or shape[2] < 1:
        raise ImageError(f"{path}: 'images' has zero-size images {shape}")
    pixels = shape[0] * shape[1] * shape[2]
    if pixels > cap:
        raise ImageError(f"{path}: 'images' declares {'×'.join(map(str, shape))} = {pixels} "
                         f"pixels, which exceeds the limit of {cap} (possible decompression bomb; "
                         "raise it with $IGC_MAX_PIXELS)")


@lru_cache(maxsize=2)
def _npz_images(path: str, mtime: float, cap: int) -> np.ndarray:
    """The validated `images` array of an .npz file (cached: bench loads its entries one by one).

    Its header is checked first: a small file can declare a huge array, so the pixel cap
    applies to all its images together, before anything is allocated."""
    del mtime  # part of the cache key only
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                found = ", ".join(archive.files) or "nothing"
                raise ImageError(f"{path}: no 'images' array in this .npz (found: {found})")
            _check_declared(path, *_npy_header(archive, path), cap)
            images = archive["images"]
    except ImageError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), OSError
        raise ImageError(f"{path}: not a readable .npz file: {exc}") from None
    images.setflags(write=False)
    return images


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _looked_for() -> str:
    return ", ".join(f"*{ext}" for ext in IMAGE_EXTENSIONS)


def collect(paths: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[ImageRef]:
    """ImageRefs for files, directories (their image files, sorted; subdirectories only when
    `recursive`) and .npz files (each entry of `images`, named ``file.npz[i]``).

    Order follows `paths`; a file listed twice is kept once. Images whose names collide
    (same file name in two directories) are named by their path instead.
    """
    refs: list[ImageRef] = []
    for raw in paths:
        if str(raw) == "":  # Path("") is the current folder, which nobody asks for this way
            raise UsageError("an image path is an empty name (an unset variable?); give a "
                             "file or a folder")
        path = Path(raw)
        if not path.exists():
            raise ImageError(f"{path}: no such file or directory")
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                (f for f in path.glob(pattern) if f.is_file() and _is_image_file(f)),
                key=lambda f: str(f.relative_to(path)),
            )
            if not files:
                where = f"{path} or its subdirectories" if recursive else str(path)
                raise ImageError(f"no images found in {where} (looked for {_looked_for()})")
            refs.extend(ImageRef(f.name, str(f)) for f in files)
        elif path.suffix.lower() == ".npz":
            images = _npz_images(str(path), _mtime(str(path)), resolve_max_pixels())
            if len(images) == 0:
                raise ImageError(f"no images found in {path} ('images' is empty)")
            refs.extend(ImageRef(f"{path.name}[{i}]", str(path), i) for i in range(len(images)))
        else:
            refs.append(ImageRef(path.name, str(path)))
    return _unique(refs)


def _unique(refs: list[ImageRef]) -> list[ImageRef]:
    seen: set[tuple[str, int | None]] = set()
    kept: list[ImageRef] = []
    for ref in refs:
        key = (os.path.realpath(ref.path), ref.index)
        if key not in seen:
            seen.add(key)
            kept.append(ref)
    counts: dict[str, int] = {}
    for ref in kept:
        counts[ref.name] = counts.get(ref.name, 0) + 1
    return [
        ref
        if counts[ref.name] == 1
        else ImageRef(
            ref.path if ref.index is None else f"{ref.path}[{ref.index}]", ref.path, ref.index
        )
        for ref in kept
    ]


def package_dir(package: str, folder: str) -> Path | None:
    """`folder` inside an installed package, found without importing the package (importing
    skimage.data is slow and may try to download)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / folder
        if candidate.is_dir():
            return candidate
    return None


def _is_rgb_photo(path: Path) -> bool:
    """8-bit RGB single-frame image, checked from the header only."""
    import warnings

    try:
        from PIL import Image as PILImage

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(path) as im:
                return (
                    im.mode == "RGB"
                    and ";16" not in str(im.tile[0][3] if im.tile else "")
                    and int(getattr(im, "n_frames", 1) or 1) == 1
                )
    except Exception:
        return False


@lru_cache(maxsize=1)
def _gallery() -> tuple[ImageRef, ...]:
    refs = []
    for package, folder, names in GALLERY_SOURCES:
        root = package_dir(package, folder)
        if root is None:
            continue
        for name in names:
            path = root / name
            if path.is_file() and _is_rgb_photo(path):
                refs.append(ImageRef(name, str(path)))
    return tuple(sorted(refs, key=lambda r: r.name))


def gallery() -> list[ImageRef]:
    """The default bench images: the colour photographs bundled with scikit-image (9) and, when
    installed, matplotlib (1), sorted by name.

    Works offline: only files already installed are used, nothing is downloaded. Raises `ImageError` when none is
    found (scikit-image missing or stripped of its data).
    """
    refs = list(_gallery())
    if not refs:
        raise ImageError(
            "no gallery images found: scikit-image's bundled data is missing "
            "(pip install scikit-image), or pass image paths"
        )
    return refs


def pick(refs: list[ImageRef], count: int | None, seed: int = 0) -> list[ImageRef]:
    """`count` refs drawn without replacement with numpy's default_rng(seed), returned in the
    pool's order (which `collect` and `gallery` sort by name) so reports are stable.

    count=None takes all. A count below 1 or above the pool size is a `UsageError`.
    """
    seed, n = checked_seed(seed), len(refs)
    if count is None:
        return list(refs)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise UsageError(f"--count must be an integer, got {count!r}")
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if count > n:
        raise UsageError(f"--count {count} is larger than the {n} images available")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n, size=int(count), replace=False)
    return [refs[i] for i in sorted(int(i) for i in chosen)]


def center_crop(pixels: Image, size: int | tuple[int, int]) -> Image:
    """The central ``size``×``size`` (or (height, width)) window of an (H, W, ...) array.

    A side shorter than requested is kept whole, so small images pass through unchanged. When
    the margin is odd, the extra row/column is dropped at the bottom/right.
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        want_h = want_w = int(size)
    else:
        try:
            want_h, want_w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise UsageError(
                f"crop size must be an integer or (height, width), got {size!r}"
            ) from None
    if want_h < 1 or want_w < 1:
        raise UsageError(f"crop size must be at least 1, got {size!r}")
    h, w = pixels.shape[:2]
    ch, cw = min(h, want_h), min(w, want_w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(pixels[top : top + ch, left : left + cw])
