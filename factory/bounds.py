"""Allowed ranges of numeric settings, declared in the type of each recipe field.

A field annotated `Annotated[int, Range(1)]` carries its range with it, so the recipe validator checks it
once when the recipe is loaded and the tests can walk every field and try a value outside its range: a
key added later without a range fails those tests instead of letting `warmup_epochs: -3` start a build.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True)
class Range:
    """An interval of allowed values; None is unbounded, `*_open` excludes the end itself."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        """The range in words a user can act on: '>= 0', '> 0', 'in [0, 1)'."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any number"

    def outside(self) -> float:
        """A value just outside the range (for tests of the validator)."""
        if self.low is not None:
            return self.low if self.low_open else self.low - 1
        if self.high is not None:
            return self.high if self.high_open else self.high + 1
        raise ValueError("an unbounded range has no value outside it")


Count = Annotated[int, Range(0)]  # epochs, iterations, warm-up calls: 0 turns the step off
PositiveInt = Annotated[int, Range(1)]  # batch sizes, sizes, channel counts, resolutions
Seed = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]  # learning rates, tolerances, widths
NonNegative = Annotated[float, Range(0)]  # weight decay, clipping (0 = off), weights
Fraction = Annotated[float, Range(0, 1, high_open=True)]  # shares, smoothing, dropout: [0, 1)
Probability = Annotated[float, Range(0, 1)]
