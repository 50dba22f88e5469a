"""Refuse JSON nested deeper than any real request needs, before decoding it.

msgspec (and anything that walks a decoded body) recurses once per level, so a
body of a thousand nested arrays would end in a RecursionError. The check runs in
C loops: strings are cut out and every byte but brackets deleted; a few passes
remove matched innermost pairs (enough for any ordinary body), and what is left is
measured by a running sum over +1 per opening and -1 per closing bracket.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

from nexus.core.errors import BadRequest

MAX_NESTING = 128  # levels of objects and arrays: JSON schemas in tools use a few dozen
QUICK_PASSES = 4
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 and -1 as signed bytes


def check_nesting(body: bytes, limit: int = MAX_NESTING) -> None:
    if body.count(b"[") + body.count(b"{") <= limit:  # most bodies: cannot be that deep
        return
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(QUICK_PASSES):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not inner or inner == brackets:  # all matched, or not JSON (the decoder says)
            return
        brackets = inner
    deepest = max(accumulate(array("b", brackets.translate(_STEPS))), default=0)
    if deepest + QUICK_PASSES > limit:
        raise BadRequest(f"The request body nests objects and arrays more than {limit} "
                         "levels deep")
