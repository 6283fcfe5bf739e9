"""argparse types shared by the subcommands: a zero or negative count is refused up front,
with the option's name, instead of failing (or silently doing nothing) later."""

from __future__ import annotations

import argparse
import math


def int_at_least(minimum: int):
    """An argparse type: a whole number not below `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        return value
    return parse


positive_int = int_at_least(1)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number above 0 (got {text})")
    return value
