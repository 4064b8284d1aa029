"""A prepared GPU continuation of shipped models: pack what they read into .gpu/, bring exports back.

    python scripts/gpu_pack.py pack [--run [NAME=]INIT:LR:BATCH[:TEACHER[:GROW]] ...]
                                    [--minutes 7] [--cifar 1000]
    python scripts/gpu_pack.py join FOLDER OUT      # after the run: the parts back into models

Why a script: a GPU is lent to a session for 15 minutes in all, start-up included, and only the
checkout travels to it (64 MiB with the folders named in `carry`), not ../shared. `pack` fills the
git-ignored `.gpu/` with the first `--cifar` CIFAR-10 training images (so each batch keeps the
quarter of small images the shipped models learned from) and training photos up to what is left
of that upload once the tracked files are counted, one photo of each set in turn: McMaster
(lossless, as they are), Urban100 downscaled by 1/2 (lossless WebP, as the shipped larger model's
continuation used), Sun-Hays 80 and BSDS500 train (the published JPEGs, as they are). Validation is
the first BSDS500 test photos by name, downscaled by 1/2 (lossless WebP): of the sets measured, the
one whose bits moved as Kodak's did (docs/training.md, "Which validation follows Kodak"). It writes
`.gpu/run.sh`, which trains
every `--run` at once on the GPU (one process each: a step of these small models leaves the GPU
idle between kernels, so two processes share it) and leaves their best and last exports in $OUT as
one tar in parts under the 16 MiB a returned file may have (a width-256 model in float32 is 26.6
MB), with its sha256 and the runs' console log. With a GPU lent:

    run(command="bash .gpu/run.sh", carry=[".gpu"], timeout_s=590)

then `join` the returned folder into model folders, one per run (checked against the sha256 the
run wrote), and measure them here (`igc bench --model FOLDER ...`; docs/training.md, "A prepared
GPU run"). The same run.sh runs on the CPU for a check: IGC_GPU_DEVICE=cpu IGC_GPU_EXTRA="--steps 3"
OUT=/tmp/out bash .gpu/run.sh. Kodak and the CIFAR-10 test set are never packed: they are
evaluation data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = SHARED / "photos"
UPLOAD = 64 << 20  # the device machine's upload: the checkout plus carried folders
MARGIN = 2 << 20  # what untracked build files and the run's own notes may add
PART = 15 << 20  # bytes per returned file (the limit is 16 MiB each, 8 files)
VAL_PHOTOS = 12  # BSDS500 test photos at 1/2 for validation (about 0.7 MiB), the first by name


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
    runs = [parse_run(r) for r in (a.run or [DEFAULT_RUN])]  # before the old pack goes
    names = [r["name"] for r in runs]
    if len(set(names)) < len(names):  # each run writes /tmp/gpu/NAME and $OUT/NAME.log
        sys.exit(f"gpu_pack: two --run share a name ({names}): give each its own NAME=")
    out = ROOT / ".gpu"
    if out.exists():
        shutil.rmtree(out)
    (out / "val").mkdir(parents=True)
    budget = a.budget_mib << 20 if a.budget_mib else UPLOAD - tracked_bytes() - MARGIN
    used, sets = 0, {}
    extra = ""
    if a.cifar:
        (out / "data").mkdir()
        with np.load(SHARED / "cifar10" / "train_first4000.npz") as z:
            np.savez_compressed(out / "data" / "cifar10_train.npz", images=z["images"][:a.cifar])
        used += (out / "data" / "cifar10_train.npz").stat().st_size
        extra = " --data .gpu/data/cifar10_train.npz"
    for src in sorted((DATA / "bsds500" / "test").glob("*.jpg"))[:VAL_PHOTOS]:
        dst = out / "val" / (src.stem + ".webp")
        halved(src, dst)
        used += dst.stat().st_size
    urban = sorted((DATA / "urban100").glob("*.webp"))

    copy = shutil.copyfile
    pools = {"mcmaster": (sorted((DATA / "mcmaster").glob("*.webp")), copy),
             "urban_half": (urban, halved),
             "sun_hays80": (sorted((DATA / "sun_hays80").glob("*.jpg")), copy),
             "bsds500_train": (sorted((DATA / "bsds500" / "train").glob("*.jpg")), copy)}
    sets = {name: 0 for name in pools}
    for name in pools:
        (out / "data" / name).mkdir(parents=True, exist_ok=True)
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
    if not any(sets.values()):
        sys.exit(f"gpu_pack: no training photo fits: CIFAR-10 and validation take "
                 f"{used / 2**20:.1f} MiB of the {budget / 2**20:.1f} MiB the upload leaves "
                 f"beside the tracked files; give a smaller --cifar")
    data = " ".join(f"--data .gpu/data/{n}" for n, c in sets.items() if c) + extra
    (out / "run.sh").write_text(run_script(runs, data, a.minutes))
    manifest = {"runs": runs, "minutes": a.minutes, "photos": sets, "cifar": a.cifar,
                "val": VAL_PHOTOS, "bytes": used, "budget": budget}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f".gpu/: {used / 2**20:.1f} MiB of {budget / 2**20:.1f} MiB; photos {sets}; "
          f"CIFAR-10 train {a.cifar}; validation {VAL_PHOTOS} BSDS500 test photos at 1/2; "
          f"runs {[r['name'] for r in runs]}")


DEFAULT_RUN = "v3kd=igc-rgb16-v3:2e-4:256:igc-rgb16-w256-v2"
RUN_FORM = "[NAME=]INIT:LR:BATCH[:TEACHER[:GROW]]"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def parse_run(text: str) -> dict:
    """[NAME=]INIT:LR:BATCH[:TEACHER[:GROW]] -> the run's settings.

    TEACHER (a shipped id or folder; empty for none) is distilled from (`igc train --teacher`,
    --distill 0.8), GROW blocks are added to INIT first (`--grow-layers`). NAME (a letter or
    digit, then letters, digits, - and _; by default INIT's shipped id without 'igc-rgb16-') is
    the run's folder and log, so two runs from one INIT need names of their own. Text before the
    first '=' that is no such name belongs to INIT (a folder such as runs/lr=3e-4/best)."""
    name, sep, spec = text.partition("=")
    if not (sep and NAME.fullmatch(name)):
        name, spec = "", text
    fields = spec.split(":")
    try:
        if not 3 <= len(fields) <= 5:
            raise ValueError
        init, lr, batch = fields[0], float(fields[1]), int(fields[2])
        teacher = fields[3] if len(fields) > 3 else ""
        grow = int(fields[4]) if len(fields) > 4 else 0
        if not init or not (math.isfinite(lr) and lr > 0) or batch < 1 or grow < 0:
            raise ValueError
    except ValueError:
        sys.exit(f"gpu_pack: --run {text!r}: expected {RUN_FORM}, e.g. {DEFAULT_RUN}")
    name = name or Path(init).name.removeprefix("igc-rgb16-") or "run"
    if not NAME.fullmatch(name):
        sys.exit(f"gpu_pack: --run {text!r}: the run needs a NAME= of letters, digits, - and _ "
                 f"(not {name!r})")
    return {"init": init, "lr": lr, "batch": batch, "teacher": teacher, "grow": grow,
            "name": name}


def train_args(run: dict) -> str:
    """The options a run adds to the shared `igc train` command line."""
    extra = f" --teacher {shlex.quote(run['teacher'])} --distill 0.8" if run.get("teacher") else ""
    return extra + (f" --grow-layers {run['grow']}" if run.get("grow") else "")


def run_script(runs: list[dict], data: str, minutes: float) -> str:
    """The command the GPU machine runs: every run at once, then their exports into $OUT."""
    starts = "\n".join(
        f"python -m igc train --init-from {shlex.quote(r['init'])} {data} --val .gpu/val --val-count 512 "
        f"--minutes {minutes} --batch {r['batch']} --lr {r['lr']} --warmup 100 --eval-minutes 0.7 "
        f"--eval-every 100000{train_args(r)} --device \"$DEVICE\" --name gpu-{r['name']} "
        f"--out /tmp/gpu/{r['name']} "
        f"$EXTRA > \"$OUT/{r['name']}.log\" 2>&1 &\npids+=($!)" for r in runs)
    names = " ".join(r["name"] for r in runs)
    return f"""#!/bin/bash
# Written by scripts/gpu_pack.py: GPU continuations of {', '.join(repr(r['init']) for r in runs)},
# {minutes} minutes of training each, all at once.
set -uo pipefail
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
DEVICE="${{IGC_GPU_DEVICE:-cuda}}"
EXTRA="${{IGC_GPU_EXTRA:-}}"
mkdir -p "$OUT" /tmp/gpu
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
pids=()
{starts}
rc=0
for p in "${{pids[@]}}"; do wait "$p" || rc=1; done
tail -n 5 "$OUT"/*.log
for n in {names}; do python scripts/gpu_pack.py last /tmp/gpu/$n; done
python scripts/gpu_pack.py split "$OUT" {names}
exit $rc
"""


def split(a: argparse.Namespace) -> None:
    """On the GPU machine: each run's best export and log into one tar, in returnable parts."""
    dst, root = Path(a.out), Path(a.root)
    tar_path = root / "back.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name in a.names:
            run = root / name
            for export in ("best", "last"):
                if (run / export).is_dir():
                    tar.add(run / export, arcname=f"{name}/{export}")
            for extra in ("log.jsonl", "training.json"):
                if (run / extra).is_file():
                    tar.add(run / extra, arcname=f"{name}/{extra}")
    blob = tar_path.read_bytes()
    for i in range(0, len(blob), PART):
        (dst / f"back.tar.part{i // PART}").write_bytes(blob[i:i + PART])
    (dst / "back.sha256").write_text(hashlib.sha256(blob).hexdigest() + "\n")
    print(f"split: {len(blob):,} bytes in {-(-len(blob) // PART)} parts")


def last(a: argparse.Namespace) -> None:
    """On the GPU machine: the run's final weights (its last checkpoint) as an export in last/.

    A warm start whose validation photos differ from the images it is judged on can find its
    best at step 0 (the first GPU run did), so the end of the schedule comes back too, and the
    choice is made here on Kodak. The trainer writes last/ itself when its schedule ends; this
    covers a run stopped before that (the call's time limit), from its last checkpoint."""
    import torch
    from safetensors.torch import save

    run = Path(a.run)
    if not (run / "checkpoint.pt").is_file() or not (run / "best").is_dir():
        print(f"last: {run} has no checkpoint.pt and best/ (the run did not train); nothing exported")
        return
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    done = run / "last" / "training.json"
    if done.is_file() and json.loads(done.read_text()).get("step") == ckpt["step"]:
        print(f"last: step {ckpt['step']}, exported by the trainer at the schedule's end")
        return
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in ckpt["model"].items()}
    dst = run / "last"
    dst.mkdir(exist_ok=True)
    (dst / "model.safetensors").write_bytes(save(state, metadata={"format": "pt"}))
    shutil.copyfile(run / "best" / "config.json", dst / "config.json")
    info = json.loads((run / "best" / "training.json").read_text())
    info.update(step=ckpt["step"], tokens=ckpt["tokens"], elapsed_s=round(ckpt["elapsed"], 1),
                val_bpsp=None, exported="the last checkpoint (end of the schedule)")
    (dst / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"last: step {ckpt['step']}, {ckpt['tokens']:,} tokens -> {dst}")


def join(a: argparse.Namespace) -> None:
    """Here: the parts back into one folder per run, refused unless the sha256 matches."""
    src, dst = Path(a.folder), Path(a.out)
    parts = sorted(src.glob("back.tar.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if not parts or not (src / "back.sha256").is_file():
        sys.exit(f"gpu_pack: {src} holds no back.tar.part* and back.sha256 (the files a run of "
                 ".gpu/run.sh returns)")
    blob = b"".join(p.read_bytes() for p in parts)
    want = (src / "back.sha256").read_text().strip()
    if hashlib.sha256(blob).hexdigest() != want:
        sys.exit(f"gpu_pack: the parts in {src} do not make the tar the run wrote (sha256)")
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / "back.tar"
    tmp.write_bytes(blob)
    with tarfile.open(tmp) as tar:
        tar.extractall(dst, filter="data")
    tmp.unlink()
    for log in src.glob("*.log"):
        shutil.copyfile(log, dst / log.name)
    print(f"{dst}: {len(blob):,} bytes from {len(parts)} parts, sha256 {want}; "
          f"runs {sorted(p.name for p in dst.iterdir() if p.is_dir())}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="fill .gpu/ and write .gpu/run.sh")
    p.add_argument("--run", action="append", metavar=RUN_FORM,
                   help=f"a continuation to train (repeatable; default {DEFAULT_RUN})")
    p.add_argument("--minutes", type=float, default=7.0)
    p.add_argument("--cifar", type=int, default=1000,
                   help="CIFAR-10 training images to pack (0: none)")
    p.add_argument("--budget-mib", type=int, default=0, help="0: what the upload leaves")
    p.set_defaults(fn=pack)
    s = sub.add_parser("split", help="(on the GPU machine) the runs' exports into returnable parts")
    s.add_argument("out")
    s.add_argument("names", nargs="+")
    s.add_argument("--root", default="/tmp/gpu", help="where run.sh's runs are")
    s.set_defaults(fn=split)
    la = sub.add_parser("last", help="(on the GPU machine) a run's last checkpoint as an export")
    la.add_argument("run")
    la.set_defaults(fn=last)
    j = sub.add_parser("join", help="returned parts back into a model folder")
    j.add_argument("folder")
    j.add_argument("out")
    j.set_defaults(fn=join)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
