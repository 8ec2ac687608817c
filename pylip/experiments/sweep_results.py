"""A sweep's results for people: the tidy table of runs, the summary over seeds, the plots, the printed table.

* :func:`runs_frame`: one row per run (``pandas``): the grid values (``hidden``
  as ``"16-16"``), ``status``, ``clean_accuracy`` (digits) or ``mse_*``
  (sin/classifier), ``bound`` (checked LipSDP-Neuron), ``trivial_bound``,
  ``certified@EPS`` and ``attacked@EPS`` per radius, ``wall_time``, ``error``;
* :func:`summary_frame`: per grid point without the seed, ``METRIC_mean`` and
  ``METRIC_std`` (sample standard deviation; NaN for one seed) and ``n_seeds``
  over the finished runs;
* :func:`plot_summary`: clean / certified / attacked accuracy (or MSE) against
  ``L_des`` (or the x the spec names; the certified bound where no ``L_des``
  varies), error bars one standard deviation, one line per architecture (and
  per value of every other varied parameter);
* :func:`format_table`: the summary as text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .sweep_spec import SweepSpec

BASE_METRICS = ("clean_accuracy", "mse_train", "mse_test", "mse_sine", "bound", "trivial_bound",
                "training_bound", "start_bound", "wall_time")


def _label(value: Any) -> Any:
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    return value


def runs_frame(spec: SweepSpec, records: list[dict[str, Any]]) -> Any:
    """One row per run, in the order of the spec's points."""
    import pandas as pd

    rows = []
    for record in records:
        row: dict[str, Any] = {"key": record["key"], "task": record["task"], "status": record["status"]}
        row.update({k: _label(record["point"].get(k)) for k in spec.grid_keys})
        row["layer_sizes"] = _label(record.get("layer_sizes"))
        row.update({m: record.get(m) for m in BASE_METRICS if m in record or m == "wall_time"})
        for kind in ("certified", "attacked"):
            for eps, value in (record.get(f"{kind}_accuracy") or {}).items():
                row[f"{kind}@{eps}"] = value
        row["error"] = record.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


def metric_columns(frame: Any) -> list[str]:
    """The numeric result columns of a runs frame (what the summary averages)."""
    radii = [c for c in frame.columns if c.startswith(("certified@", "attacked@"))]
    return [c for c in BASE_METRICS if c in frame.columns] + radii


def group_keys(spec: SweepSpec) -> list[str]:
    """The varied parameters a summary row is identified by (all but the seed)."""
    return [k for k in spec.grid_keys if k != "seed"]


def summary_frame(spec: SweepSpec, runs: Any) -> Any:
    """Mean and standard deviation over seeds per grid point (finished runs only)."""
    import pandas as pd

    done = runs[runs["status"] == "ok"]
    metrics = metric_columns(done)
    keys = group_keys(spec)
    if done.empty:
        return pd.DataFrame(columns=[*keys, "n_seeds"])
    values = done[metrics].astype(float)
    if keys:
        grouped = values.groupby([done[k] for k in keys], dropna=False, sort=False)
        stats = grouped.agg(["mean", "std"])
        counts = grouped.size()
    else:
        stats = values.agg(["mean", "std"]).unstack().to_frame().T
        counts = pd.Series([len(done)])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats = stats.reset_index(drop=not keys)
    stats.insert(len(keys), "n_seeds", list(counts))
    return stats


def _x_axis(spec: SweepSpec, summary: Any) -> str:
    if spec.plot_x is not None:
        return spec.plot_x
    if "L_des" in group_keys(spec) and summary["L_des"].notna().any():
        return "L_des"
    return "bound"


def _panels(summary: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(metric, line style)]) per panel: accuracy and each radius, or the MSEs."""
    panels: list[tuple[str, list[tuple[str, str]]]] = []
    if "clean_accuracy_mean" in summary.columns:
        panels.append(("clean accuracy", [("clean_accuracy", "-")]))
        radii = [c[len("certified@"):-len("_mean")] for c in summary.columns
                 if c.startswith("certified@") and c.endswith("_mean")]
        for eps in radii:
            panels.append((f"eps = {eps}: certified (solid), attacked (dashed)",
                           [(f"certified@{eps}", "-"), (f"attacked@{eps}", "--")]))
    else:
        mses = [c[:-len("_mean")] for c in summary.columns if c.startswith("mse_") and c.endswith("_mean")]
        panels.append(("MSE of the W_bar net", [(m, "-") for m in mses]))
    return panels


def _line_label(row: Any, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys) or "all runs"


def plot_summary(spec: SweepSpec, summary: Any, path: Path) -> Path:
    """Accuracy (or MSE) against L_des (or the bound), error bars over seeds, one line per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = _x_axis(spec, summary)
    x_column = f"{x}_mean" if x == "bound" else x
    lines = [k for k in group_keys(spec) if k != x]
    panels = _panels(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    groups = summary.groupby(lines, dropna=False, sort=False) if lines else [((), summary)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (_, group) in enumerate(groups):
        group = group.sort_values(x_column)
        label = _line_label(group.iloc[0], lines)
        color = colors[index % len(colors)]
        for ax, (_, metrics) in zip(axes[0], panels):
            for metric, style in metrics:
                ax.errorbar(
                    group[x_column], group[f"{metric}_mean"], yerr=group[f"{metric}_std"].fillna(0.0),
                    linestyle=style, marker="o", markersize=3, capsize=3, color=color,
                    label=label if style == "-" and metric == metrics[0][0] else None,
                )
    for ax, (title, metrics) in zip(axes[0], panels):
        ax.set(title=title, xlabel="certified bound L" if x == "bound" else x,
               ylabel="MSE" if metrics[0][0].startswith("mse_") else "accuracy")
        if metrics[0][0].startswith("mse_"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"sweep of {spec.task}: mean over seeds, bars one standard deviation", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f}±{std:.3f}"


def format_table(spec: SweepSpec, summary: Any, n_failed: int = 0) -> str:
    """The summary as text: per grid point, n, bound and the metrics as mean±std over seeds."""
    keys = group_keys(spec)
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    shown = [m for m in metrics if m not in ("trivial_bound", "training_bound", "start_bound", "wall_time")]
    names = {"clean_accuracy": "clean"}
    header = [*keys, "n", *(names.get(m, m) for m in shown), "time/s"]
    rows = []
    for _, row in summary.iterrows():
        cells = [str(row[k]) for k in keys] + [str(int(row["n_seeds"]))]
        cells += [
            f"{row[f'{m}_mean']:.4g}" if m == "bound" else _cell(row[f"{m}_mean"], row[f"{m}_std"])
            for m in shown
        ]
        cells.append(f"{row['wall_time_mean']:.1f}")
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append(
        "mean±std over seeds; bound: LipSDP-Neuron bound of the returned net (checked); "
        "certified@eps / attacked@eps: accuracy certified / under l2 PGD at radius eps"
        + (f"; {n_failed} run(s) FAILED (see runs.csv, column error)" if n_failed else "")
    )
    return "\n".join(lines)
