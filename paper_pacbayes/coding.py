"""Exact arithmetic coding of quantized weights, and the prefix-free message length.

The model is static: symbol k has count n_k out of d, so the message must also carry the
counts (L * ceil(log2 d) bits) and the codebook (16 bits per fp16 centroid). Arithmetic is
done with Python integers, so the coded length is exact, not an entropy estimate:
after the whole sequence the interval has width W / D with W = prod n_{s_i} and D = d^d, and
the code is the shortest dyadic interval [m/2^b, (m+1)/2^b) inside it (so the code is
decodable on its own: ceil(-log2 P) <= b <= ceil(-log2 P) + 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _model(counts: Sequence[int]) -> tuple[list[int], list[int], int]:
    counts = [int(c) for c in counts]
    cum = [0]
    for c in counts:
        cum.append(cum[-1] + c)
    return counts, cum, cum[-1]


def encode(symbols: Sequence[int], counts: Sequence[int]) -> tuple[int, int]:
    """Arithmetic-code ``symbols`` under the static model ``counts``; returns (m, bits)."""
    counts, cum, d = _model(counts)
    low, width, scale = 0, 1, 1  # interval [low/scale, (low+width)/scale)
    for s in symbols:
        if counts[s] == 0:
            raise ValueError(f"symbol {s} has zero count")
        low = low * d + cum[s] * width
        width *= counts[s]
        scale *= d
    # smallest b such that a whole dyadic interval [m/2^b, (m+1)/2^b) fits inside
    b = max(0, scale.bit_length() - width.bit_length())
    while True:
        m = -((-low << b) // scale)  # ceil(low * 2^b / scale)
        if (m + 1) * scale <= (low + width) << b:
            return m, b
        b += 1


def decode(m: int, bits: int, counts: Sequence[int], length: int) -> list[int]:
    counts, cum, d = _model(counts)
    out = []
    low, width, scale = 0, 1, 1
    for _ in range(length):
        # find s with low + cum[s]*width <= m/2^bits * scale < low + cum[s+1]*width (all scaled by d)
        target = m * scale * d  # compare against (low*d + cum*width) << bits
        lo_s, hi_s = 0, len(counts) - 1
        while lo_s < hi_s:
            mid = (lo_s + hi_s + 1) // 2
            if (low * d + cum[mid] * width) << bits <= target:
                lo_s = mid
            else:
                hi_s = mid - 1
        s = lo_s
        out.append(s)
        low = low * d + cum[s] * width
        width *= counts[s]
        scale *= d
    return out


def coded_length(symbols: Sequence[int] | np.ndarray, levels: int) -> int:
    """Exact arithmetic-coded length in bits of ``symbols`` under their own empirical counts."""
    symbols = np.asarray(symbols, dtype=np.int64)
    counts = np.bincount(symbols, minlength=levels).tolist()
    return encode(symbols.tolist(), counts)[1]


def entropy_bits(symbols: Sequence[int] | np.ndarray, levels: int) -> float:
    """d * H(p) with p the empirical frequencies: the ideal (real-valued) code length."""
    counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=levels)
    d = counts.sum()
    p = counts[counts > 0] / d
    return float(-d * (p * np.log2(p)).sum())


def message_bits(symbols: np.ndarray, levels: int, codebook_bits: int = 16) -> dict[str, float]:
    """Every part of the compressed model's description, and its prefix-free total.

    prefix-free length = len + 2 log2(len) (Lotfi et al. 2022), so that the Kraft sum over
    all messages is at most 1 and 2^-len is a valid prior.
    """
    d = len(symbols)
    coded = coded_length(symbols, levels)
    counts = levels * math.ceil(math.log2(max(d, 2)))
    codebook = codebook_bits * levels
    total = coded + counts + codebook
    return {"coded_bits": float(coded), "count_bits": float(counts), "codebook_bits": float(codebook),
            "message_bits": float(total), "prefix_free_bits": total + 2 * math.log2(total),
            "entropy_bits": entropy_bits(symbols, levels)}
