"""The numerics: which arithmetic computed a file's probabilities, by the number its header holds.

A range decoder needs the encoder's probabilities bit for bit, so a file records the arithmetic
that produced them (docs/format.md, "Numerics"). This table is the one place where each numerics
has its number, its names, its constants and the engines that compute it: the container checks a
header's number against it, `igc info` and bench rows name numerics from it, the engines read
their constants from it, and docs/format.md lists the same rows (tests/test_numerics.py checks).

Changing any arithmetic of a step means a new row with a new number, never an edit of an old row:
old files keep decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_NUMERICS = 255  # a header's numerics is one byte's worth; larger values are corruption


@dataclass(frozen=True)
class Numerics:
    number: int  # what file headers record
    name: str  # short name: bench rows' `numerics_name`
    explanation: str  # what `igc info` says computed the probabilities
    # None: each step gives float64 distributions, which the coder quantizes. Otherwise each step
    # gives integer frequencies, every one >= 1, summing to 2**frequency_bits (the table the coder
    # is handed, docs/plugins.md "Integer frequencies")
    frequency_bits: int | None
    # tiles may be grouped into batches and lanes at will: each tile's probabilities do not
    # depend on which tiles step beside it, so a decoder may step several files as one batch
    regroupable: bool
    engines: tuple[str, ...] = ()  # interchangeable implementations (a process setting)
    default_engine: str | None = None


TORCH = Numerics(
    0, "float32 torch step",
    "the model's float32 torch step (files of format versions 1-2, and plugin models)",
    frequency_bits=None, regroupable=False)
FUSED = Numerics(
    1, "fused float kernels",
    "igc's fused float kernels around torch's weight products, on one thread",
    frequency_bits=None, regroupable=False)
INTEGER = Numerics(
    2, "integer",
    "integer arithmetic, identical on every machine and engine",
    frequency_bits=24, regroupable=True,
    engines=("reference", "cpu", "cuda"), default_engine="cpu")

REGISTRY: dict[int, Numerics] = {n.number: n for n in (TORCH, FUSED, INTEGER)}


def known(number: int) -> Numerics | None:
    """The numerics a header's number names, or None for one this igc does not know (a plugin
    model's own, or a newer igc's)."""
    return REGISTRY.get(number)


def name_of(number: int) -> str:
    """The short name of a numerics ("plugin" for a number igc does not define)."""
    found = known(number)
    return found.name if found else "plugin"


def engine_choices() -> str:
    """The engines of numerics 2 and the default, as help texts say it."""
    *first, last = INTEGER.engines
    return (f"{', '.join(first)} or {last} (default: $IGC_ENGINE, else "
            f"{INTEGER.default_engine})")


def regroupable(number: int) -> bool:
    """Whether tiles coded with this numerics may be stepped in any grouping."""
    found = known(number)
    return bool(found and found.regroupable)
