"""The paper's derived quantities."""

from __future__ import annotations

from paper_infcompute.fit import PowerLaw, invert


def data_efficiency(standard_data_law: PowerLaw, loss: float, tokens: float) -> float:
    """D_eff / D: how much more data the standard recipe would need to reach ``loss``.

    D_eff inverts the standard recipe's data law L(D) = A / D^beta + E; a loss at or below
    its asymptote is beyond any amount of data for that recipe (inf).
    """
    return invert(standard_data_law, loss) / tokens


def data_efficiency_bounds(standard_data_law: PowerLaw, loss: float, tokens: float) -> tuple[float, float, float]:
    """(lowest, point, highest) data efficiency over the law and its leave-one-out refits."""
    values = [data_efficiency(law, loss, tokens) for law in [standard_data_law, *standard_data_law.loo]]
    return min(values), values[0], max(values)


def measured_efficiency_floor(data_sizes, standard_losses, loss: float, tokens: float) -> float:
    """A lower bound on the data efficiency that needs no fitted law: the largest measured data
    budget at which the standard recipe is still worse than ``loss``, over ``tokens`` (assumes the
    standard recipe's tuned loss does not rise with more data). 0 when it beats ``loss`` everywhere."""
    worse = [d for d, std in zip(data_sizes, standard_losses, strict=True) if std > loss]
    return max(worse, default=0.0) / tokens


def distill_retention(single: float, ensemble: float, student: float) -> float:
    """Fraction of the ensemble's gain over one model that the student keeps."""
    gain = single - ensemble
    if gain <= 0:
        raise ValueError(f"the ensemble ({ensemble}) is not better than the single model ({single})")
    return (single - student) / gain
