"""Axes helpers shared by the plot modules: ``ax`` in, ``ax`` out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from multilevel.results.result import FitResult as HierarchicalFit

__all__ = ["grid", "method_label", "single_axes"]


def single_axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    """``ax`` itself, or the axes of a new figure."""
    if ax is not None:
        return ax
    return plt.subplots(figsize=figsize)[1]


def grid(
    axes: Sequence[Axes] | np.ndarray | None, shape: tuple[int, int], panel: tuple[float, float]
) -> tuple[Figure, np.ndarray]:
    """A ``shape`` array of axes: the given ``axes`` (reshaped) or a new figure's."""
    n_rows, n_cols = shape
    if axes is None:
        fig, arr = plt.subplots(
            n_rows, n_cols, figsize=(panel[0] * n_cols, panel[1] * n_rows), squeeze=False
        )
        return fig, arr
    arr = np.asarray(axes, dtype=object).ravel()
    if arr.size < n_rows * n_cols:
        raise ValueError(f"Need {n_rows * n_cols} axes ({n_rows} x {n_cols}), got {arr.size}.")
    return arr[0].figure, arr[: n_rows * n_cols].reshape(n_rows, n_cols)


def method_label(fit: HierarchicalFit) -> str:
    """Display name of the frequentist method (``'REML'``, ``'ML'``, ``'Laplace'``...)."""
    return "" if fit.frequentist is None else str(fit.frequentist.method)
