"""Figure helpers shared by the suites: a headless pyplot, and one way to write a PNG."""

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
