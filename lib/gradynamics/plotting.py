"""One matplotlib style for every figure of the book."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt

#: A colour-blind-safe cycle (Okabe-Ito), used in this order by every chapter.
COLORS: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7",
                           "#E69F00", "#56B4E9", "#F0E442", "#000000")

STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(COLORS)),
    "lines.linewidth": 1.8,
    "legend.frameon": False,
    "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a chapter)."""
    mpl.rcParams.update(STYLE)


def subplots(nrows: int = 1, ncols: int = 1, width: float = 3.4,
             height: float = 3.0, **kwargs):
    """``plt.subplots`` in the book style with a per-panel size in inches; returns (fig, axes)."""
    for name, value in (("nrows", nrows), ("ncols", ncols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name}: expected a positive size in inches, got {value!r}")
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)
