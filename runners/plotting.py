"""Figure helpers shared by the suites: a headless pyplot, one way to write a PNG, and bars of a
metric's seed mean with every seed's value as a dot."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class FigureWriter:
    """Saves figures under one directory and remembers their paths (what ``figures`` returns)."""

    def __init__(self, out_dir: str | Path, dpi: int = 110):
        self.out_dir, self.dpi, self.paths = Path(out_dir), dpi, []

    def save(self, fig, name: str) -> Path:
        import matplotlib.pyplot as plt

        path = self.out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=self.dpi)
        plt.close(fig)
        self.paths.append(path)
        return path


def seed_bars(ax, results, metric: str, bars: dict[str, tuple[str, str]], fontsize: int = 8) -> list[str]:
    """One bar per key of ``bars`` (key -> (label, colour)) whose metric ``metric.format(key)`` every
    result has: the mean over seeds, each seed's value a dot. Returns the keys drawn."""
    import numpy as np

    keys = [k for k in bars if all(metric.format(k) in r.metrics for r in results)]
    vals = [[r.metrics[metric.format(k)] for r in results] for k in keys]
    ax.bar(range(len(keys)), [np.mean(v) for v in vals], color=[bars[k][1] for k in keys])
    for j, v in enumerate(vals):
        ax.plot([j] * len(v), v, "k.", ms=4)
    ax.set_xticks(range(len(keys)), [bars[k][0] for k in keys], fontsize=fontsize)
    return keys
