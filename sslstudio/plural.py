"""Counts in messages: '1 image', '0 images', '2 classes'."""


def count(n: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith(("s", "ch", "sh", "x")) else "s")
    return f"{n:,} {noun if n == 1 else plural}"
