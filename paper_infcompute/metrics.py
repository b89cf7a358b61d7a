"""The paper's derived quantities."""

from __future__ import annotations

from paper_infcompute.fit import PowerLaw, invert


def data_efficiency(standard_data_law: PowerLaw, loss: float, tokens: float) -> float:
    """D_eff / D: how much more data the standard recipe would need to reach ``loss``.

    D_eff inverts the standard recipe's data law L(D) = A / D^beta + E; a loss at or below
    its asymptote is beyond any amount of data for that recipe (inf).
    """
    return invert(standard_data_law, loss) / tokens


def distill_retention(single: float, ensemble: float, student: float) -> float:
    """Fraction of the ensemble's gain over one model that the student keeps."""
    gain = single - ensemble
    if gain <= 0:
        raise ValueError(f"the ensemble ({ensemble}) is not better than the single model ({single})")
    return (single - student) / gain
