"""One check of ``paper_ssd.lm.Rows`` for every session backend: ragged rows, fed and rolled back
in a batch, give each sequence's logits alone."""

from __future__ import annotations

import pytest
import torch

from paper_ssd.lm import Rows


def check_ragged_rows(session, seqs: list[list[int]], atol: float = 1e-4) -> None:
    """seqs: three sequences of at least 12 tokens (tokens 1, 2, 3 are used as a rejected speculation)."""
    alone = []
    for x in seqs:
        session.reset()
        alone.append(session.feed(x))
    rows = Rows.fresh(session, 3)
    last = rows.feed([x[:5 + r] for r, x in enumerate(seqs)], last_only=True)  # only each row's last logits
    for r in range(3):
        assert torch.allclose(last[r], alone[r][4 + r], atol=atol)
    rows.truncate([5, 5, 5])
    rows.feed([x[5:7] + [1, 2, 3] for x in seqs])  # a speculation of three ...
    rows.truncate([7, 6, 7])  # ... rejected after different accepted lengths
    rows.feed([seqs[0][7:], seqs[1][6:], seqs[2][7:]])
    rows.truncate([len(x) - 2 for x in seqs])
    logits = rows.feed([x[-2:] for x in seqs])
    for r in range(3):
        assert torch.allclose(logits[r], alone[r][-2:], atol=atol)
    assert rows.lengths.tolist() == [len(x) for x in seqs]
    with pytest.raises(ValueError, match="cannot truncate"):
        rows.truncate([len(seqs[0]) + 1, 1, 1])
