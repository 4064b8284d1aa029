"""Context mode 3's constants tried on training photographs: model bits of each variant.

    python scripts/expert_tune.py IMAGE... [--crop 256] [--model M]
                                  [--try "LR_SLOPE=(118,13) MAG_START=64" ...]

Each image (a path; centre crop) is measured in context mode 2 and in mode 3 with the shipped
constants, then with each `--try` set of constants of igc/engines/expert.py replaced (names and
Python literals, space-separated; `adapt.LR_TEMP=(10,9)` replaces one of igc/codec/adapt.py's
learning rates, for mode 3 only). The bits are the encoder's own (`estimate`, the stepped loop),
with the predictor's NumPy definition, which reads the constants when it runs (the numba kernels
have them compiled in). A variant is only a measurement: shipping one changes the mode's
definition, its fixture and every figure. Tune on training data (docs/design.md, "Context mode
3"), never on Kodak or the gallery.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--try", dest="variants", action="append", default=[])
    a = ap.parse_args()

    from PIL import Image

    import igc.api as api
    from igc.benchmark.sources import center_crop
    from igc.codec import adapt, expert
    from igc.engines import expert as rules
    from igc.plugins.compose import compose

    missing = [p for p in a.images if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"no such image: {', '.join(missing)}")
    api.set_threads(a.threads)
    expert._kernels = lambda: None  # the NumPy definition, which reads the constants at run time
    images = []
    for path in a.images:
        img = np.asarray(Image.open(path).convert("RGB"))
        images.append(np.ascontiguousarray(center_crop(img, a.crop) if a.crop else img))
    pixels = sum(img.size for img in images)
    shipped = {name: getattr(rules, name) for name in dir(rules) if name.isupper()}
    shipped |= {f"adapt.{name}": getattr(adapt, name) for name in ("LR_TEMP", "LR_CALIB",
                                                                    "LR_HEAD")}

    def measure(label: str, mode: int, changes: dict) -> float:
        for name, value in {**shipped, **changes}.items():
            module, _, attr = name.rpartition(".")
            setattr(adapt if module else rules, attr, value)
        codec = compose(a.model, context=mode)
        bits = [codec.estimate_bits(img) for img in images]
        print(f"{label}: {sum(bits) / pixels:.4f} bits per subpixel ("
              + ", ".join(f"{b / img.size:.4f}" for b, img in zip(bits, images, strict=True))
              + ")", flush=True)
        return sum(bits)

    two = measure("mode 2", 2, {})
    three = measure("mode 3", 3, {})
    print(f"mode 3 against mode 2: {three / two - 1:+.2%}")
    for variant in a.variants:
        changes = {}
        for item in variant.split():
            name, _, value = item.partition("=")
            if name not in shipped:
                raise SystemExit(f"{name}: not a constant of igc/engines/expert.py or a rate "
                                 "of igc/codec/adapt.py")
            changes[name] = ast.literal_eval(value)
        bits = measure(variant, 3, changes)
        print(f"  against mode 2: {bits / two - 1:+.2%}, against mode 3: {bits / three - 1:+.2%}")


if __name__ == "__main__":
    main()
