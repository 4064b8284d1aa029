"""Causal attention forward + backward on a CPU, the ways PyTorch offers, for one layer of each
shipped shape (batch 16, T = 768, head size 32): why attention bounds the CPU training step
(docs/training.md, "Speed on a CPU").

    python scripts/attention_cpu.py [--threads 1] [--repeats 3] [--rounds 2] [--fp32]

Times are milliseconds of this process's CPU time per forward + backward of one layer, which
other processes on a shared machine disturb far less than the wall clock. Candidates:

* `sdpa`: `scaled_dot_product_attention(is_causal=True)`, PyTorch's CPU flash kernel (what the
  model uses);
* `explicit`: scores, mask, softmax, weighted sum as matrix products (autograd backward);
* `explicit, compiled`: the same through `torch.compile` (mask and softmax fused);
* `blocks of 128, compiled`: query blocks that skip the key blocks wholly in the future;
* `flash fwd + block bwd`: the flash forward, and a backward of the same blocks that reuses its
  log-sum-exp (the flash algorithm written with matrix products, compiled).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

B, T, D = 16, 768, 32


def explicit(q, k, v):
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    a = (q @ k.transpose(-1, -2)).float() * D**-0.5
    return a.masked_fill(~mask, float("-inf")).softmax(-1).to(q.dtype) @ v


def blocks(q, k, v, n=6):
    bs, outs = T // n, []
    for i in range(n):
        e = (i + 1) * bs
        s = (q[:, :, i * bs : e] @ k[:, :, :e].transpose(-1, -2)).float() * D**-0.5
        keep = torch.arange(e)[None, :] <= torch.arange(i * bs, e)[:, None]
        p = s.masked_fill(~keep, float("-inf")).softmax(-1).to(q.dtype)
        outs.append(p @ v[:, :, :e])
    return torch.cat(outs, 2)


def block_backward(q, k, v, out, lse, do, n=6):
    """dq, dk, dv of causal attention from the forward's output and log-sum-exp."""
    bs, scale = T // n, D**-0.5
    delta = (do.float() * out.float()).sum(-1)
    dq = torch.empty_like(q)
    dk = torch.zeros(q.shape, dtype=torch.float32)
    dv = torch.zeros(q.shape, dtype=torch.float32)
    for i in range(n):
        e, sl = (i + 1) * bs, slice(i * bs, (i + 1) * bs)
        qi, doi, kk, vv = q[:, :, sl], do[:, :, sl], k[:, :, :e], v[:, :, :e]
        p = torch.exp((qi @ kk.transpose(-1, -2)).float() * scale - lse[:, :, sl, None])
        keep = torch.arange(e)[None, :] <= torch.arange(i * bs, e)[:, None]
        p = torch.where(keep, p, 0.0)
        dv[:, :, :e] += (p.to(q.dtype).transpose(-1, -2) @ doi).float()
        dp = (doi @ vv.transpose(-1, -2)).float()
        ds = (p * (dp - delta[:, :, sl, None]) * scale).to(q.dtype)
        dq[:, :, sl] = ds @ kk
        dk[:, :, :e] += (ds.transpose(-1, -2) @ qi).float()
    return dq, dk.to(q.dtype), dv.to(q.dtype)


_compiled_backward = None


class FlashForwardBlockBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, do):
        return _compiled_backward(*ctx.saved_tensors, do.contiguous())


def cpu_ms(fn, heads, dtype, repeats):
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, heads, T, D, dtype=dtype, requires_grad=True) for _ in range(3))
    g = torch.randn(B, heads, T, D, dtype=dtype)

    def once():
        fn(q, k, v).backward(g)

    once()  # compiles where it compiles
    t0 = time.process_time()
    for _ in range(repeats):
        once()
    return (time.process_time() - t0) / repeats * 1e3


def main() -> None:
    global _compiled_backward
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="also time float32 (default: bf16 only)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    _compiled_backward = torch.compile(block_backward)
    candidates = {
        "sdpa (flash)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "explicit": explicit,
        "explicit, compiled": torch.compile(explicit),
        "blocks of 128, compiled": torch.compile(blocks),
        "flash fwd + block bwd": FlashForwardBlockBackward.apply,
    }
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}; "
          f"{a.threads} thread(s); ms of CPU time per forward + backward of one layer")
    for heads, shape in ((4, "default (4 heads)"), (8, "w256 (8 heads)")):
        for dtype in (torch.bfloat16, torch.float32) if a.fp32 else (torch.bfloat16,):
            for name, fn in candidates.items():
                times = [cpu_ms(fn, heads, dtype, a.repeats) for _ in range(a.rounds)]
                print(f"{shape:18} {dtype!s:15} {name:24} "
                      + " ".join(f"{t:7.0f}" for t in times), flush=True)
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
