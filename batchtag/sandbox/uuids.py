"""The sandbox's own UUID handling: parsing an id from a URL and formatting seeded ids.

Written for the sandbox alone (it shares no code with the client's id handling), so a bug
in either side's parsing or formatting shows up as a disagreement in the tests instead of
passing on both sides.
"""

from __future__ import annotations

import numpy as np

# The canonical text form, 8-4-4-4-12 hex digits (RFC 9562 section 4).
GROUPS = (8, 4, 4, 4, 12)
TEXT_LENGTH = sum(GROUPS) + len(GROUPS) - 1  # 36
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

# Column `c` of a formatted id shows the high (even `n`) or low nibble of byte `n // 2`;
# the other four columns are dashes.
_DIGIT_COLUMNS = np.array(
    [c for c in range(TEXT_LENGTH) if c not in (8, 13, 18, 23)],
    dtype=np.intp,
)
_NIBBLE_TEXT = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def parse(text: str) -> bytes | None:
    """The 16 bytes of a UUID written in the canonical form (either case); None otherwise.

    >>> parse("0B7F3F38-7D53-4A3E-9E0B-8F4D2C1E5A66").hex()
    '0b7f3f387d534a3e9e0b8f4d2c1e5a66'
    >>> parse("0b7f3f387d534a3e9e0b8f4d2c1e5a66") is None
    True
    """
    if len(text) != TEXT_LENGTH:
        return None
    groups = text.split("-")
    if tuple(len(group) for group in groups) != GROUPS:
        return None
    digits = "".join(groups)
    if not HEX_DIGITS.issuperset(digits):
        return None
    return bytes.fromhex(digits)


def texts(raw: np.ndarray) -> list[str]:
    """The lowercase canonical text of each row of an (n, 16) uint8 array, all at once.

    >>> texts(np.arange(16, dtype=np.uint8).reshape(1, 16))
    ['00010203-0405-0607-0809-0a0b0c0d0e0f']
    """
    rows = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1, 16)
    nibbles = np.empty((len(rows), 32), dtype=np.uint8)
    nibbles[:, 0::2] = rows >> 4
    nibbles[:, 1::2] = rows & 0x0F
    chars = np.full((len(rows), TEXT_LENGTH), ord("-"), dtype=np.uint8)
    chars[:, _DIGIT_COLUMNS] = _NIBBLE_TEXT[nibbles]
    joined = chars.tobytes().decode("ascii")
    return [joined[at : at + TEXT_LENGTH] for at in range(0, len(joined), TEXT_LENGTH)]
