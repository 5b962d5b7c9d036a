"""The spectral profile of a run in the report: where the class means' variance lies on the graph's
Laplacian spectrum (``debiased_spectral_profile`` [L, S2, K] at ``alignment_positions`` [S2] and
``spectral_eigenvalues`` [K]: the means of the ``pca_window``, their sampling noise taken out;
docs/run-format.md), as a figure and a sentence of numbers.

The low-frequency bias of Yang, Tanaka and Hu (arXiv 2507.13540) predicts that the share at low
eigenvalues grows both with depth and with context ("double convergence"). The report states the
share on the lowest LOW_FREQUENCY_GROUPS non-zero eigenvalues, at the first and last snapshot of the
deep block and in the shallowest and the deep block at the last snapshot, beside what means with no
relation to the graph would give (each non-zero eigenvector an equal share); whether that beats the
random-weight control is for the tables of a sweep. Runs written before the profile existed have no
such arrays, and those that hold the energy window's ``spectral_profile`` (icgt before the debiased
one) have none that can be read (its 20 tokens per snapshot left so much sampling noise that the share
grew with the tokens in the window: tests/python/test_spectrum_validation.py): their report leaves the
figure and the sentence out. numpy and matplotlib only.

Example:
    >>> from icgt.report.spectrum import spectrum_summary
    >>> from icgt.study.run_folder import load_run
    >>> shares = spectrum_summary(load_run(grid_run))["low_frequency_share"]
    >>> round(shares["first"], 2), round(shares["last"], 2), round(shares["random"], 2)
    (0.5, 0.8, 0.2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .plots import new_figure
from ..study.run_folder import Run

#: How many of the lowest distinct non-zero eigenvalues count as "low frequency": the grid's lowest two
#: hold z2, z3 (2 - sqrt(2), twice) and 4 - 2 sqrt(2), three of its 15 non-constant directions.
LOW_FREQUENCY_GROUPS = 2
#: Eigenvalues below this are the zero eigenvalue (one per connected component); the run stores them
#: as the solver gives them, within about 1e-15 of 0.
ZERO_EIGENVALUE = 1e-9


def has_spectrum(run: Run) -> bool:
    """Whether the run carries a spectral profile (runs written before it existed do not).

    >>> from icgt.study.run_folder import load_run
    >>> has_spectrum(load_run(grid_run))
    True
    """
    return "debiased_spectral_profile" in run.arrays and "spectral_eigenvalues" in run.arrays


def low_frequency_groups(run: Run) -> np.ndarray:
    """Indices, on the eigenvalue axis, of the LOW_FREQUENCY_GROUPS lowest non-zero eigenvalues.

    >>> from icgt.study.run_folder import load_run
    >>> low_frequency_groups(load_run(grid_run)).tolist()
    [1, 2]
    """
    non_zero = np.flatnonzero(run.arrays["spectral_eigenvalues"] > ZERO_EIGENVALUE)
    return non_zero[:LOW_FREQUENCY_GROUPS]


def random_low_frequency_share(run: Run) -> float:
    """The low-frequency share of means unrelated to the graph: an equal share per non-zero eigenvector,
    so the low groups' eigenvectors over all of them (3 / 15 on the 4x4 grid). From the Laplacian of the
    run's edges, since the run stores the distinct eigenvalues but not how often each occurs.

    >>> from icgt.study.run_folder import load_run
    >>> random_low_frequency_share(load_run(grid_run))
    0.2
    """
    num_nodes = len(run.labels)
    laplacian = np.zeros((num_nodes, num_nodes))
    for a, b in run.edges:
        laplacian[a, b] = laplacian[b, a] = -1
    np.fill_diagonal(laplacian, -laplacian.sum(axis=1))
    values = np.linalg.eigvalsh(laplacian)
    eigenvalues = run.arrays["spectral_eigenvalues"]
    tolerance = 1e-6 * max(1.0, float(np.max(eigenvalues, initial=0)))
    low = eigenvalues[low_frequency_groups(run)]
    in_low = np.abs(values[:, None] - low[None, :]).min(axis=1, initial=np.inf) <= tolerance
    return float(in_low.sum() / np.sum(values > ZERO_EIGENVALUE))


def _complete_snapshots(run: Run, layer_index: int) -> np.ndarray:
    return np.flatnonzero(np.isfinite(run.arrays["debiased_spectral_profile"][layer_index]).all(axis=-1))


def spectrum_summary(run: Run, layer: int | None = None) -> dict[str, Any]:
    """The low-frequency share (the variance on the LOW_FREQUENCY_GROUPS lowest non-zero eigenvalues) at
    block ``layer`` (default: :meth:`Run.default_layer`, the deep block) and its sentence, JSON-ready;
    {} for a run without a spectral profile. ``low_frequency_share``: ``first`` and ``last`` at the first
    and last snapshot where every node is seen twice or more (its noise estimated; positions
    ``first_position``, ``last_position``),
    ``shallow`` (the first captured block) and ``deep`` at the last snapshot where both have every node,
    and ``random`` (:func:`random_low_frequency_share`); ``low_frequency_eigenvalues`` the eigenvalues.

    >>> from icgt.study.run_folder import load_run
    >>> print(spectrum_summary(load_run(grid_run))["spectrum"])   # doctest: +ELLIPSIS
    Spectrum: in block 6 of 8 the class means' variance on the two lowest non-zero Laplacian eigenvalues ...
    """
    if not has_spectrum(run):
        return {}
    layer_index = run.layer_index(layer)
    groups = low_frequency_groups(run)
    low = run.arrays["debiased_spectral_profile"][..., groups].sum(axis=-1)  # [L, S2]
    positions = run.arrays["alignment_positions"]
    shares: dict[str, float | None] = {"first": None, "last": None, "shallow": None, "deep": None,
                                       "random": random_low_frequency_share(run)}
    complete = _complete_snapshots(run, layer_index)
    if complete.size:
        shares.update(first=float(low[layer_index, complete[0]]), last=float(low[layer_index, complete[-1]]))
    both = np.intersect1d(_complete_snapshots(run, 0), complete)
    if both.size:
        shares.update(shallow=float(low[0, both[-1]]), deep=float(low[layer_index, both[-1]]))
    summary = {
        "low_frequency_eigenvalues": [float(value) for value in run.arrays["spectral_eigenvalues"][groups]],
        "low_frequency_share": shares,
        "low_frequency_positions": {"first": int(positions[complete[0]]) if complete.size else None,
                                    "last": int(positions[complete[-1]]) if complete.size else None,
                                    "blocks": int(positions[both[-1]]) if both.size else None},
    }
    summary["spectrum"] = _sentence(run, layer_index, summary)
    return summary


def _sentence(run: Run, layer_index: int, summary: dict[str, Any]) -> str:
    shares, at = summary["low_frequency_share"], summary["low_frequency_positions"]
    block = int(run.layers[layer_index])
    eigenvalues = ", ".join(f"{value:.2f}" for value in summary["low_frequency_eigenvalues"])
    count = {1: "one", 2: "two", 3: "three"}.get(len(summary["low_frequency_eigenvalues"]),
                                                 str(len(summary["low_frequency_eigenvalues"])))
    head = (f"Spectrum: in block {block} of {run.num_layers} the class means' variance on the {count} lowest "
            f"non-zero Laplacian eigenvalues ({eigenvalues})")
    if shares["first"] is None:
        return f"{head} is undefined: no snapshot holds every node twice."
    text = (f"{head}, the class means' sampling noise taken out, is {shares['first']:.0%} of the total at the "
            f"first snapshot with every node (t = {at['first']}) "
            f"and {shares['last']:.0%} at the last (t = {at['last']})")
    if shares["shallow"] is not None and int(run.layers[0]) != block:
        text += (f"; at t = {at['blocks']}, {shares['shallow']:.0%} in block {int(run.layers[0])} against "
                 f"{shares['deep']:.0%} in block {block}")
    return text + f" (means unrelated to the graph: {shares['random']:.0%})."


def spectrum_figure(run: Run, layer: int | None = None) -> Figure:
    """Heatmaps of the spectral profile: the share of the class means' variance at each distinct Laplacian
    eigenvalue (columns, ascending: low = smooth on the graph; sampling noise taken out, so a share may dip
    a little below 0) per captured block at the last snapshot where every block has a share (left), and
    over context length at block ``layer`` (default: the deep block, :meth:`Run.default_layer`; right).

    >>> from icgt.study.run_folder import load_run
    >>> figure = spectrum_figure(load_run(grid_run))
    >>> [axes.get_ylabel() for axes in figure.axes[:2]]
    ['block (0-based)', 'context length (tokens)']
    """
    layer_index = run.layer_index(layer)
    profile = run.arrays["debiased_spectral_profile"]
    eigenvalues = run.arrays["spectral_eigenvalues"]
    positions = run.arrays["alignment_positions"]
    complete = np.flatnonzero(np.isfinite(profile).all(axis=(0, 2)))
    last = complete[-1] if complete.size else profile.shape[1] - 1
    finite = profile[np.isfinite(profile)]
    top = float(finite.max()) if finite.size else 1.0
    figure = new_figure(12, 4.8)
    by_block, by_context = figure.subplots(1, 2)
    columns = np.arange(eigenvalues.size + 1) - 0.5
    rows = np.arange(profile.shape[0] + 1) - 0.5
    image = by_block.pcolormesh(columns, rows, profile[:, last], vmin=0, vmax=top, cmap="viridis")
    by_block.set_yticks(np.arange(profile.shape[0]), [str(block) for block in run.layers])
    by_block.set_ylabel("block (0-based)")
    by_block.set_title(f"every captured block, at context {positions[last]} tokens", fontsize=10)
    edges = np.concatenate([[positions[0] - (positions[1] - positions[0]) / 2 if positions.size > 1
                             else positions[0] - 0.5],
                            (positions[1:] + positions[:-1]) / 2,
                            [positions[-1] + (positions[-1] - positions[-2]) / 2 if positions.size > 1
                             else positions[-1] + 0.5]])
    by_context.pcolormesh(columns, edges, profile[layer_index], vmin=0, vmax=top, cmap="viridis")
    by_context.set_ylabel("context length (tokens)")
    by_context.set_title(f"block {int(run.layers[layer_index])} of {run.num_layers} over context "
                         "(blank: a node seen under twice in the window)", fontsize=10)
    for ax in (by_block, by_context):
        ax.set_xticks(np.arange(eigenvalues.size), [f"{value:.2f}" for value in eigenvalues],
                      rotation=90 if eigenvalues.size > 12 else 0, fontsize=8)
        ax.set_xlabel("Laplacian eigenvalue (D - A), distinct; low = smooth on the graph")
    figure.colorbar(image, ax=[by_block, by_context], label="share of the centred class means' variance (debiased)")
    figure.suptitle(run.title)
    return figure
