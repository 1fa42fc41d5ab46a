"""``peak_position_error``: |ω_peak(pred) − ω_peak(true)| of a spectrum, in the grid unit."""

from __future__ import annotations

import numpy as np

from phonbench.metrics import Metric


def _peak_position_error(y, p, mask, task) -> float:
    grid = task.grid_array()
    return float(np.abs(grid[np.argmax(p, axis=1)] - grid[np.argmax(y, axis=1)]).mean())


PEAK_POSITION_ERROR = Metric(
    "peak_position_error", _peak_position_error, "minimize", "frequency", ("spectrum",),
    description="mean |position of the highest DoS peak, predicted − true| (grid unit)",
)
