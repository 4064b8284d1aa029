"""Print a training run's validation curve (runs/NAME/log.jsonl) as a Markdown table.

Used to write the model card: `python scripts/val_curve.py runs/igc-rgb16`.
"""

import json
import sys
from pathlib import Path


def main(run: str) -> None:
    rows = [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]
    print("| step | tokens seen | minutes | train bpsp | val bpsp |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        train = "—" if r.get("train_bpsp") is None else f"{r['train_bpsp']:.3f}"
        print(f"| {r['step']} | {r['tokens'] / 1e6:.1f} M | {r['elapsed_s'] / 60:.1f} | {train} | "
              f"{r['val_bpsp']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/igc-rgb16")
