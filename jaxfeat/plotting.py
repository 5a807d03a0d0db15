"""Figures users expect (matplotlib, Agg backend: works without a screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def ensemble_predictions(result: dict, widths, path: str) -> str:
    """Plot an ensemble's predictions along a line (mean ± sd over seeds, per width) and f*."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    t = result["t"]
    ax.plot(t, result["target"], "k--", lw=2, label="target f*(t)")
    for i, w in enumerate(widths):
        pred = result["pred"][i]
        mean, sd = pred.mean(0), pred.std(0)
        mse = result["test_mse"][i]
        label = f"width {w}: excess MSE {mse.mean():.3f} ± {mse.std() / np.sqrt(len(mse)):.3f}"
        (line,) = ax.plot(t, mean, lw=1.5, label=label)
        ax.fill_between(t, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("t  (x = t·β)")
    ax.set_ylabel("f(x)")
    ax.set_title(f"random-features ridge ensemble, {result['pred'].shape[1]} seeds per width")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
