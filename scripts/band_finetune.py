"""Train a model whose attention reads a band of positions: `igc train` with every layer's
attention narrowed as scripts/attention_span.py narrows it (`SPAN+KEEP`: query i reads keys
j <= i with i - j < SPAN or j < KEEP). Its validation, logged as any run's, is then the banded
model's bits, so step 0 is what the band costs the starting model untrained and the curve how
much training wins back (docs/speed.md, "What a whole photo's decode reads").

    python scripts/band_finetune.py 96+48 -- --init-from igc-rgb16-v3 --minutes 40 ...

Everything after `--` goes to `igc train` as given. This measures; it ships nothing: igc's
codec and engines attend over the whole tile, so an export of such a run is only evaluated
(python scripts/attention_span.py --model RUN/last --spans 96+48).
"""

from __future__ import annotations

import sys

from attention_span import banded_attention, parse_spec

from igc.training import model as train_model


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        raise SystemExit(__doc__.split("\n\n")[1])
    span, keep = parse_spec(sys.argv[1])
    if span is None:
        raise SystemExit("give a band SPAN+KEEP, e.g. 96+48")
    train_model.Attention.forward = banded_attention(span, keep)
    from igc.cli.app import app

    app(["train", *sys.argv[3:]], prog_name="igc")


if __name__ == "__main__":
    main()
