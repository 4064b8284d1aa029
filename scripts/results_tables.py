"""Write the measured tables of docs/results.md from the bench JSON files beside it.

    python scripts/results_tables.py            # rewrite the generated blocks in place
    python scripts/results_tables.py --check    # exit 1 if docs/results.md (or the README's
                                                # summary) is not what the JSON says

Every `igc bench --json` and `igc speed --json` output in docs/results/ becomes one block of
docs/results.md, between the markers

    <!-- generated from results/NAME.json by scripts/results_tables.py -->
    <!-- end of generated block -->

A large JSON (per-image figures of a thousand images) is kept gzipped as NAME.json.gz, its marker
naming that file: the checkout is what a lent GPU receives, in 64 MiB with the training data it
carries, so every megabyte kept here is one that data cannot use.

A block is the figures and, under them, what the JSON recorded about the run: the command, the
date, the CPU, threads and load average, igc's version and the model. A field the JSON does not
hold is left out, never guessed. A JSON file without a marker in docs/results.md is an error, so
every committed measurement is shown.

The README's summary table is copied from docs/results.md's, between the markers
`<!-- summary: copied from docs/results.md -->` and `<!-- end of summary -->`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results.md"
FOLDER = ROOT / "docs" / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- generated from results/(?P<name>[\w.-]+?\.json(?:\.gz)?) by "
                   r"scripts/results_tables\.py -->\n)(?P<body>.*?)(<!-- end of generated block -->)",
                   re.S)
SUMMARY = re.compile(r"(<!-- summary: copied from docs/results\.md -->\n)(?P<body>.*?)"
                     r"(<!-- end of summary -->)", re.S)


def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def run_note(env: dict) -> str:
    """What the JSON says about where and when it ran; only the fields it holds."""
    parts = []
    if "command" in env:
        parts.append(f"command `{env['command']}`")
    if "date" in env:
        parts.append(f"date {env['date']} (end of the run)")
    if "cpu" in env:
        cores = f", {env['cpu_count']} cores" if "cpu_count" in env else ""
        parts.append(f"CPU {env['cpu']}{cores}")
    if "cpu_kernels" in env:
        parts.append(f"cpu engine on {env['cpu_kernels']}")
    threads = env.get("threads", env.get("torch_threads"))
    if threads is not None:
        parts.append(f"{threads} torch threads")
    if "load_average" in env:
        one, five, fifteen = env["load_average"]
        parts.append(f"load average {one} / {five} / {fifteen} (1 / 5 / 15 min) at the end")
    elif "load_average_1min" in env:
        parts.append(f"load average {env['load_average_1min']} (1 min) at the end")
    if "wall_seconds" in env:
        parts.append(f"{env['wall_seconds']:.0f} s wall")
    version = env.get("versions", {}).get("igc-codec")
    if version:
        parts.append(f"igc {version}, torch {env['versions'].get('torch', '?')}")
    return "; ".join(parts) + "."


def bench_block(data: dict) -> str:
    summary, env = data["summary"], data["environment"]
    lines = ["| compressor | bits/subpixel | total ratio | mean ratio | model bits/subpixel | "
             "round trip |", "|---|---:|---:|---:|---:|:---:|"]
    for name, s in sorted(summary.items(), key=lambda kv: kv[1]["bits_per_subpixel"]):
        label = name + (" (estimate: model bits)" if s.get("estimate") else "")
        model = env.get("models", {}).get(name)
        if model:
            label += f" ({model['model']}, numerics {model['numerics']})"
        mb = s.get("model_bits_per_subpixel")
        check = {True: "exact", False: "FAILED", None: "not checked"}[s["roundtrip_ok"]]
        lines.append(f"| {label} | {s['bits_per_subpixel']:.3f} | {s['total_ratio']:.3f} | "
                     f"{s['mean_ratio']:.3f} | {'' if mb is None else f'{mb:.3f}'} | {check} |")
    images = data.get("images") or sorted({r["image"] for r in data["results"]})
    lines.append("")
    what = [f"{len(images)} images"]
    if "seed" in env:
        what.append(f"seed {env['seed']}")
    if env.get("preprocessing"):
        what.append(env["preprocessing"])
    lines.append(f"- Images: {', '.join(what)}.")
    for name, m in env.get("models", {}).items():
        speed = summary.get(name, {})
        rates = ""
        if speed.get("encode_subpixels_per_second"):
            decode = speed.get("decode_subpixels_per_second")
            rates = (f"; encode {_n(speed['encode_subpixels_per_second'])}"
                     + (f" and decode {_n(decode)} subpixels per second" if decode else
                        " subpixels per second (an estimate: nothing decoded)"))
        context = f", context {m['context']}" if m.get("context") else ""
        if m.get("photo_model"):  # the packaged default: a model per image size
            photo = m["photo_model"]
            lines.append(f"- Model of `{name}`: the default pair, {m['model']} (fingerprint "
                         f"{m['fingerprint']} of the pair; photographs {photo['fingerprint']}, "
                         f"{_n(photo['parameters'])} parameters")
            lines[-1] += (f"; numerics {m['numerics']}, engine {m.get('engine', '?')}"
                          f"{context}){rates}.")
            continue
        lines.append(f"- Model of `{name}`: {m['model']} (fingerprint {m['fingerprint']}, "
                     f"{_n(m['parameters'])} parameters, numerics {m['numerics']}, engine "
                     f"{m.get('engine', '?')}{context}){rates}.")
    lines.append(f"- Run: {run_note(env)}")
    return "\n".join(lines) + "\n"


def speed_block(data: dict) -> str:
    env = data["environment"]
    backends = list(dict.fromkeys(r["backend"] for r in data["results"]))
    by = {(r["backend"], r["phase"]): r for r in data["results"]}
    pairs = list(data.get("ratios", {}))
    head = ["phase", *[f"{b} (subpixels/s)" for b in backends], *pairs]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for phase in ("estimate", "encode", "decode"):
        cells = [phase]
        for b in backends:
            r = by.get((b, phase))
            mark = " ✗" if r and r.get("roundtrip_ok") is False else ""
            cells.append(_n(r["subpixels_per_second"]) + mark if r else "")
        cells += [f"{data['ratios'][p][phase]:.2f}×" for p in pairs]
        lines.append("| " + " | ".join(cells) + " |")
    numerics = env.get("numerics", {})
    lines.append("")
    lines.append("- Backends: " + ", ".join(f"{b} = numerics {numerics[b]}" if b in numerics else b
                                          for b in backends)
                 + (f" (engine {env['engine']})" if "engine" in env else "") + ".")
    lines.append(f"- Model {env.get('model', '?')} (fingerprint {env.get('fingerprint', '?')}); "
                 f"images {', '.join(env.get('images', []))} ({env.get('preprocessing', '')}); "
                 f"lanes {env.get('lanes')}; repeat {env.get('repeat', 1)}.")
    lines.append(f"- Run: {run_note(env)}")
    return "\n".join(lines) + "\n"


def startup_block(data: dict) -> str:
    """`python scripts/startup.py --json`: whole commands against `import torch`, then the parts
    of one fresh decode."""
    rounds, medians = data["rounds"], data["medians"]
    lines = ["| command, fresh process | median | every round |", "|---|---:|---|"]
    for name, times in rounds.items():
        lines.append(f"| `{name}` | {medians[name]:.2f} s | "
                     f"{', '.join(f'{t:.2f}' for t in times)} s |")
    lines += ["", f"Ratio of the medians, decompress / import torch: **{data['ratio']:.2f}**.", "",
              "| part of one fresh decode, in order | seconds |", "|---|---:|"]
    lines += [f"| {what} | {seconds:.3f} |" for what, seconds in data["parts"]]
    return "\n".join(lines) + "\n\n" + _plain_note(data)


def _plain_note(data: dict) -> str:
    """The run line of a script's JSON (startup, adaptation, photo speed): its command, date,
    CPU, threads and load, where recorded."""
    note = [f"command `{data['command']}`"] if "command" in data else []
    if "date" in data:
        note.append(f"date {data['date']} (end of the run)")
    if "cpu" in data:
        note.append(f"CPU {data['cpu']}")
    if "threads" in data:
        note.append(f"{data['threads']} thread{'' if data['threads'] == 1 else 's'}")
    before, after = data.get("load_average_before"), data.get("load_average_after")
    if before and after:
        note.append("load average " + " / ".join(f"{x:.2f}" for x in before) + " before, "
                    + " / ".join(f"{x:.2f}" for x in after) + " after (1 / 5 / 15 min)")
    if "load_before" in data:
        note.append(f"load average {data['load_before']:.2f} before, "
                    f"{data['load_after']:.2f} after (1 min)")
    run = f"- Run: {'; '.join(note)}.\n"
    return run + (f"- Note: {data['note']}.\n" if "note" in data else "")


def adapt_block(data: dict) -> str:
    """`python scripts/adapt_files.py --json`: context mode 0 against 1, per image."""
    lines = ["| image | mode 0, model bits | mode 1, model bits | change | mode 1, file |",
             "|---|---:|---:|---:|---:|"]
    for row in data["images"]:
        change = 100 * (row["mode1_bpsp"] / row["mode0_bpsp"] - 1)
        lines.append(f"| {row['image']} | {row['mode0_bpsp']:.4f} | {row['mode1_bpsp']:.4f} | "
                     f"{change:+.2f}% | {row['mode1_file_bpsp']:.4f} |")
    change = 100 * (data["mode1_bpsp"] / data["mode0_bpsp"] - 1)
    lines.append(f"| **all {len(data['images'])}** | **{data['mode0_bpsp']:.4f}** | "
                 f"**{data['mode1_bpsp']:.4f}** | **{change:+.2f}%** | "
                 f"**{data['mode1_file_bpsp']:.4f}** |")
    lines += ["", f"Model {data['model']}, bits per subpixel over all subpixels.", ""]
    return "\n".join(lines) + "\n" + _plain_note(data)


def photo_block(data: dict) -> str:
    """`python scripts/photo_speed.py --json`: one photo through igc and JPEG-XL e9."""
    lines = ["| codec | batch | bytes | bpsp | encode, s | decode, s | time / JPEG-XL's |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    several = len({row["model"] for row in data["rows"] if "model" in row}) > 1
    for row in data["rows"]:
        bpsp = 8 * row["bytes"] / data["subpixels"]
        ratio = f"{row['time_over_jpegxl']:.0f}×" if "time_over_jpegxl" in row else ""
        codec = f"{row['codec']}, {row['model']}" if several and "model" in row else row["codec"]
        if row.get("strip_rows"):
            codec += f", strips of {row['strip_rows']} rows"
            if row.get("strip_workers"):
                codec += f" on {row['strip_workers']}"
        if row.get("lanes") == "header":
            codec += ", the header's lanes"
        if "kernels" in row:
            codec += f", cpu engine on {row['kernels']}"
        lines.append(f"| {codec} | {row.get('batch', '')} | {_n(row['bytes'])} | "
                     f"{bpsp:.4f} | {row['encode_s']:.2f} | {row['decode_s']:.2f} | {ratio} |")
    lines += ["", f"Image {data['image']} ({_n(data['subpixels'])} subpixels).", ""]
    return "\n".join(lines) + "\n" + _plain_note(data)


def amx_block(data: dict) -> str:
    """`python scripts/amx_speed.py --json`: the cpu engine's products on AMX against pmaddwd."""
    lines = ["| model | batch | calls | pmaddwd (subpixels/s) | AMX (subpixels/s) | AMX / pmaddwd |",
             "|---|---:|---|---:|---:|---:|"]
    for row in data["rows"]:
        lines.append(f"| {row['model']} | {row['batch']} | {row['calls']} | "
                     f"{_n(row['pmaddwd'])} | {_n(row['amx'])} | "
                     f"{row['amx'] / row['pmaddwd']:.2f} |")
    lines += ["", f"One lane, one thread, random tokens, {data['positions']} positions (or the "
              f"model's context), the median of {data['rounds']} rounds taking turns; "
              f"pmaddwd on {data['pmaddwd_kernels']}.", ""]
    return "\n".join(lines) + "\n- Run: " + run_note(data["environment"]) + "\n"


def tune_block(data: dict) -> str:
    """`python scripts/tune_measure.py --json`: the shipped model against the same model with a
    parameter subset tuned to each image, the tuned changes' side information counted."""
    images = data["images"]
    subsets = [k for k, v in next(iter(images.values())).items() if isinstance(v, dict)]
    lines = []
    for subset in subsets:
        lines += [f"| image | shipped | {subset} tuned | change | side information | "
                  "with it | change | parameters moved |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        base = tuned = net = 0.0
        for name, row in images.items():
            got = row[subset]
            base, tuned, net = base + row["base_bpsp"], tuned + got["bpsp"], net + got["net_bpsp"]
            lines.append(f"| {name} | {row['base_bpsp']:.4f} | {got['bpsp']:.4f} | "
                         f"{100 * (got['bpsp'] / row['base_bpsp'] - 1):+.2f}% | "
                         f"{_n(got['side_bits'] / 8)} B | {got['net_bpsp']:.4f} | "
                         f"{100 * (got['net_bpsp'] / row['base_bpsp'] - 1):+.2f}% | "
                         f"{_n(got['nonzero'])} of {_n(got['params'])} |")
        n = len(images)
        lines.append(f"| **all {n}** (mean) | **{base / n:.4f}** | **{tuned / n:.4f}** | "
                     f"**{100 * (tuned / base - 1):+.2f}%** | | **{net / n:.4f}** | "
                     f"**{100 * (net / base - 1):+.2f}%** | |")
        lines.append("")
    steps = ", ".join(f"{s:g}" for s in data["steps"])
    lines += [f"Model {data['model']}; tuned on {'windows' if data['windows'] else 'tiles'}, "
              f"Adam at {data['lr']:g} for {data['epochs']:g} epoch, L1 pull {data['l1']:g}, "
              f"changes rounded to multiples of {steps}; bits per subpixel of the codec's "
              "estimate (numerics 2, its default context mode and strips).", ""]
    return "\n".join(lines) + "\n" + _plain_note(data)


def mode4_block(data: dict) -> str:
    """`python scripts/mode4_measure.py --json`: context mode 4 image by image against mode 3,
    the default (and mode 3 at mode 4's batch, which separates the batch from the tuning)."""
    images = data["images"]
    small = data["tuned_batch"]
    lines = [f"| image | mode 3 | mode 3, batch {small} | tuned model | changes' block | mode 4 | "
             "against mode 3 | parameters moved | tuning |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sums = dict.fromkeys(("mode3_bpsp", "mode3_small_batch_bpsp", "tuned_bpsp", "mode4_bpsp"),
                         0.0)
    for name, r in images.items():
        for key in sums:
            sums[key] += r[key]
        lines.append(f"| {name} | {r['mode3_bpsp']:.4f} | {r['mode3_small_batch_bpsp']:.4f} | "
                     f"{r['tuned_bpsp']:.4f} | {_n(r['block_bytes'])} B | {r['mode4_bpsp']:.4f} | "
                     f"{100 * (r['mode4_bpsp'] / r['mode3_bpsp'] - 1):+.2f}% | "
                     f"{_n(r['moved'])} of {_n(r['params'])} | {r['tune_seconds']:.0f} s |")
    n, base = len(images), sums["mode3_bpsp"]

    def cell(key: str) -> str:
        return f"**{sums[key] / n:.4f}** ({100 * (sums[key] / base - 1):+.2f}%)"

    lines += [f"| **all {n}** (mean) | **{base / n:.4f}** | {cell('mode3_small_batch_bpsp')} | "
              f"{cell('tuned_bpsp')} | | {cell('mode4_bpsp')} | | | |", "",
              f"Model {data['model']}; bits per subpixel of the codec's estimate (numerics 2, "
              f"strips), mode 3 at its default batch 8, mode 4 at batch {small}; the tuning: "
              f"Adam at {data['lr']:g}, {data['epochs']:g} epoch of the image's windows, L1 pull "
              f"{data['l1']:g}, changes in multiples of 2^-{data['step_shift']}; tuning seconds "
              "on one thread.", ""]
    return "\n".join(lines) + "\n" + _plain_note(data)


def block(path: Path) -> str:
    data = json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
                      else path.read_text())
    if "pmaddwd_kernels" in data:
        return amx_block(data)
    if "parts" in data:
        return startup_block(data)
    if "mode0_bpsp" in data:
        return adapt_block(data)
    if data.get("mode") == 4 and "images" in data:
        return mode4_block(data)
    if "steps" in data and "images" in data:
        return tune_block(data)
    if "rows" in data and "subpixels" in data:
        return photo_block(data)
    return speed_block(data) if "ratios" in data else bench_block(data)


def render(text: str) -> str:
    names = {p.name for p in (*FOLDER.glob("*.json"), *FOLDER.glob("*.json.gz"))}
    shown = set()

    def fill(m: re.Match) -> str:
        name = m.group("name")
        shown.add(name)
        path = FOLDER / name
        if not path.exists():
            raise SystemExit(f"docs/results.md names results/{name}, which does not exist")
        return m.group(1) + block(path) + m.group(4)

    out = BLOCK.sub(fill, text)
    missing = names - shown
    if missing:
        raise SystemExit(f"docs/results.md shows no block for {', '.join(sorted(missing))}")
    return out


def summary_of(results_text: str) -> str:
    m = SUMMARY.search(results_text)
    if not m:
        raise SystemExit("docs/results.md has no summary block")
    return m.group("body")


def with_summary(readme: str, summary: str) -> str:
    if not SUMMARY.search(readme):
        raise SystemExit("README.md has no summary block")
    return SUMMARY.sub(lambda m: m.group(1) + summary + m.group(3), readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a file is not what the JSON says")
    args = parser.parse_args()
    results = RESULTS.read_text()
    new_results = render(results)
    readme = README.read_text()
    new_readme = with_summary(readme, summary_of(new_results))
    stale = [p.name for p, old, new in ((RESULTS, results, new_results),
                                        (README, readme, new_readme)) if old != new]
    if args.check:
        if stale:
            print(f"out of date: {', '.join(stale)} (run python scripts/results_tables.py)")
            return 1
        return 0
    if new_results != results:
        RESULTS.write_text(new_results)
    if new_readme != readme:
        README.write_text(new_readme)
    print(f"rewrote {', '.join(stale)}" if stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
