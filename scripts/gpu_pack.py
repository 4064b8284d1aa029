"""A prepared GPU continuation of a shipped model: pack what it reads into .gpu/, bring its export back.

    python scripts/gpu_pack.py pack [--init igc-rgb16-w256] [--minutes 8] [--budget-mib M]
    python scripts/gpu_pack.py join FOLDER OUT      # after the run: the parts back into a model

Why a script: a GPU is lent to a session for 15 minutes in all, start-up included, and only the
checkout travels to it (64 MiB with the folders named in `carry`), not ../shared. `pack` fills the
git-ignored `.gpu/` with training photos up to what is left of that upload once the tracked
files are counted, one photo of each set in turn: McMaster (lossless, as they are), Urban100
downscaled by 1/2 (lossless WebP, as the shipped larger model's continuation used), Sun-Hays 80
and BSDS500 train (the published JPEGs, as they are). Six Urban100 photos (the last in name order) are held out as
validation. It writes `.gpu/run.sh`, which trains on the GPU from the shipped model and leaves its
best export in $OUT in parts under the 16 MiB a returned file may have (a width-256 model in
float32 is 26.6 MB). With a GPU lent:

    run(command="bash .gpu/run.sh", carry=[".gpu"], timeout_s=720)

then `join` the returned folder into a model folder (checked against the sha256 the run wrote)
and measure it here (`igc bench --model FOLDER ...`; docs/training.md, "A prepared GPU run").
Kodak and the CIFAR-10 test set are never packed: they are evaluation data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "photos"
UPLOAD = 64 << 20  # the device machine's upload: the checkout plus carried folders
MARGIN = 2 << 20  # what untracked build files and the run's own notes may add
PART = 15 << 20  # bytes per returned file (the limit is 16 MiB each, 8 files)
HELD_OUT = 6  # Urban100 photos kept for validation, the last in name order


def tracked_bytes() -> int:
    """Bytes of the files git tracks: what travels before anything is carried."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def halved(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        rgb = im.convert("RGB")
        rgb.resize((rgb.width // 2, rgb.height // 2), Image.LANCZOS).save(
            dst, "WEBP", lossless=True, quality=100, method=6)


def pack(a: argparse.Namespace) -> None:
    if not (DATA / "urban100").is_dir():
        sys.exit(f"gpu_pack: no training photos at {DATA} (../shared/data beside the checkout)")
    out = ROOT / ".gpu"
    if out.exists():
        shutil.rmtree(out)
    (out / "val").mkdir(parents=True)
    budget = a.budget_mib << 20 if a.budget_mib else UPLOAD - tracked_bytes() - MARGIN
    used, sets = 0, {}
    urban = sorted((DATA / "urban100").glob("*.webp"))
    for src in urban[-HELD_OUT:]:
        halved(src, out / "val" / src.name)
        used += (out / "val" / src.name).stat().st_size

    copy = shutil.copyfile
    pools = {"mcmaster": (sorted((DATA / "mcmaster").glob("*.webp")), copy),
             "urban_half": (urban[:-HELD_OUT], halved),
             "sun_hays80": (sorted((DATA / "sun_hays80").glob("*.jpg")), copy),
             "bsds500_train": (sorted((DATA / "bsds500" / "train").glob("*.jpg")), copy)}
    sets = {name: 0 for name in pools}
    for name in pools:
        (out / "data" / name).mkdir(parents=True)
    # one photo of each set in turn, so that a small upload still holds every kind: lossless
    # scans and city scenes, and the textured JPEG photographs (foliage, water, fabric) that
    # Kodak has and the lossless sets lack (docs/training.md, "Warm starts on this CPU")
    full = set()
    while len(full) < len(pools):
        for name, (sources, convert) in pools.items():
            if name in full:
                continue
            if sets[name] == len(sources):
                full.add(name)
                continue
            src = sources[sets[name]]
            dst = out / "data" / name / src.name
            convert(src, dst)
            if used + dst.stat().st_size > budget:
                dst.unlink()
                full.add(name)
                continue
            used, sets[name] = used + dst.stat().st_size, sets[name] + 1
    data = " ".join(f"--data .gpu/data/{n}" for n, c in sets.items() if c)
    (out / "run.sh").write_text(f"""#!/bin/bash
# Written by scripts/gpu_pack.py: a GPU continuation of {a.init}, {a.minutes} minutes of training.
set -euo pipefail
export PYTHONPATH="$PWD"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m igc train --init-from {a.init} {data} --val .gpu/val --val-count 512 \\
    --minutes {a.minutes} --batch {a.batch} --lr {a.lr} --warmup 50 --eval-minutes 0.7 \\
    --eval-every 100000 --device cuda --name gpu-run --out /tmp/gpu-run
python scripts/gpu_pack.py split /tmp/gpu-run/best "$OUT"
cp /tmp/gpu-run/log.jsonl "$OUT/" 2>/dev/null || true
""")
    manifest = {"init": a.init, "minutes": a.minutes, "batch": a.batch, "lr": a.lr,
                "photos": sets, "val": HELD_OUT, "bytes": used, "budget": budget}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f".gpu/: {used / 2**20:.1f} MiB of {budget / 2**20:.1f} MiB; photos {sets}; "
          f"validation {HELD_OUT} Urban100 photos at 1/2")


def split(a: argparse.Namespace) -> None:
    """On the GPU machine: the export's small files as they are, its weights in parts."""
    src, dst = Path(a.folder), Path(a.out)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "model.safetensors" and f.is_file() and f.stat().st_size < PART:
            shutil.copyfile(f, dst / f.name)
    blob = (src / "model.safetensors").read_bytes()
    parts = [blob[i:i + PART] for i in range(0, len(blob), PART)]
    for i, part in enumerate(parts):
        (dst / f"model.safetensors.part{i}").write_bytes(part)
    (dst / "model.sha256").write_text(hashlib.sha256(blob).hexdigest() + "\n")


def join(a: argparse.Namespace) -> None:
    """Here: the parts back into model.safetensors, refused unless the sha256 matches."""
    src, dst = Path(a.folder), Path(a.out)
    dst.mkdir(parents=True, exist_ok=True)
    parts = sorted(src.glob("model.safetensors.part*"), key=lambda p: int(p.suffix[5:]))
    if not parts or not (src / "model.sha256").is_file():
        sys.exit(f"gpu_pack: {src} holds no model.safetensors.part* and model.sha256 (the files "
                 "a run of .gpu/run.sh returns)")
    blob = b"".join(p.read_bytes() for p in parts)
    want = (src / "model.sha256").read_text().strip()
    if hashlib.sha256(blob).hexdigest() != want:
        sys.exit(f"gpu_pack: the parts in {src} do not make the model the run wrote (sha256)")
    (dst / "model.safetensors").write_bytes(blob)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("model."):
            shutil.copyfile(f, dst / f.name)
    print(f"{dst}: model.safetensors {len(blob):,} bytes from {len(parts)} parts, sha256 {want}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="fill .gpu/ and write .gpu/run.sh")
    p.add_argument("--init", default="igc-rgb16-w256")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--budget-mib", type=int, default=0, help="0: what the upload leaves")
    p.set_defaults(fn=pack)
    s = sub.add_parser("split", help="(on the GPU machine) an export into returnable parts")
    s.add_argument("folder")
    s.add_argument("out")
    s.set_defaults(fn=split)
    j = sub.add_parser("join", help="returned parts back into a model folder")
    j.add_argument("folder")
    j.add_argument("out")
    j.set_defaults(fn=join)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
