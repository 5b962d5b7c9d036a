"""A sweep's runs as one tidy table, for pandas, R and spreadsheets: ``icgt.load_sweep(folder).to_frame()``
and ``icgt table FOLDER``.

The table is long: one row per run, metric, captured block and context length, in the columns
FRAME_COLUMNS, so that every metric shares them and a reader filters or pivots what it needs. Its
metrics, for each run of the graph experiment (a mechanism run's arrays have other axes: read them with
``load_run(folder).to_xarray()``):

- every array of the run's experiment (run_folder.declared_arrays) with one value per captured block and
  context snapshot (docs/run-format.md: energy, energy_scale_invariant, energy_null_mean, energy_null_sd,
  energy_p_value, timing_energy, spectral_alignment, distance_correlation), under its own name, and
  energy_z, the paper's normalised energy against its null (Run.energy_z), along the energy's; those
  with one more axis as one metric per entry, named by Run.to_xarray's names (``pca_explained_pc0``, in
  days runs ``weekly_alignment_pc_pair0``, in held-out runs ``heldout_distances_word_kind0``, ...); the
  spectral profile, one value per eigenvalue, is left to to_xarray;
- accuracy and accuracy_renormalized over sequences at each scored position (Run.accuracy_curve), and
  timing_accuracy and timing_accuracy_renormalized at the timing positions; layer is empty;
- the scalar summaries: the numbers of the seed tables (icgt.study.aggregate.run_numbers, under the names
  of aggregate.json) and the run's own change points (CHANGE_POINTS, each a context length in value),
  with context_length empty, and layer empty except for the energy's change points (the block timed).

Values are NaN where the run's arrays are (a node absent from the energy's window, an undefined change
point). pandas is imported when a table is made, pyarrow only to write parquet.

Example:
    >>> import shutil
    >>> for seed, run in enumerate([grid_run, grid_run_seed1]):
    ...     _ = shutil.copytree(run, f"sweep/synthetic-grid-seed{seed}")
    >>> frame = load_sweep("sweep").to_frame()
    >>> frame.query("metric == 'accuracy_at_400'").set_index("seed")["value"].round(3).to_dict()
    {0: 0.881, 1: 0.882}
    >>> energy = frame.query("metric == 'energy' and layer == 6")   # block 6's curve, a column per seed
    >>> energy.pivot(index="context_length", columns="seed", values="value").shape
    (40, 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..extras import require
from ..files import write_atomically
from .aggregate import run_numbers
from .run_folder import Run, declared_arrays, dimension, load_run
from .run_store import is_run

if TYPE_CHECKING:
    import pandas

#: The columns of Sweep.to_frame that name a run, the same in each of its rows: together, since the runs of
#: a sweep may share a name (its seeds, copies of one run).
RUN_COLUMNS = ("run", "model", "preset", "graph", "control", "seed")
#: The columns of Sweep.to_frame, in order.
FRAME_COLUMNS = (*RUN_COLUMNS, "layer", "context_length", "metric", "value")
#: The dimensions of context snapshots (docs/run-format.md): an array [L, one of these] is a curve of the table.
SNAPSHOT_DIMENSIONS = ("S", "S2", "S3", "P")
#: The run's own change points in the table (entry 0 of each array; the others are its resamples):
#: metric -> (array, accuracy variant or None).
CHANGE_POINTS = {
    "energy_change_point": ("energy_change_points", None),
    "accuracy_change_point": ("accuracy_change_points", 0),
    "accuracy_renormalized_change_point": ("accuracy_change_points", 1),
    "energy_minimum_point": ("energy_minimum_points", None),
    "accuracy_rise_point": ("accuracy_rise_points", 0),
    "accuracy_renormalized_rise_point": ("accuracy_rise_points", 1),
}
#: The file formats of write_table.
TABLE_FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class Sweep:
    """The complete runs of a sweep's output folder, in the order of their folder names.

    Make one with :func:`load_sweep`.
    """

    folder: Path
    runs: tuple[Run, ...]

    @property
    def graph_runs(self) -> tuple[Run, ...]:
        """The runs of the graph experiment, which to_frame tabulates (a mechanism run's arrays have other axes).

        >>> len(load_sweep(grid_run).graph_runs)
        1
        """
        return tuple(run for run in self.runs if run.info["config"].get("experiment", "graph") == "graph")

    def to_frame(self) -> pandas.DataFrame:
        """Every run of the graph experiment as rows of one tidy table (the columns FRAME_COLUMNS; the
        metrics in the module's docstring): layer and context_length are nullable integers, empty where
        a metric has none. A sweep of mechanism runs alone gives an empty table.

        >>> frame = load_sweep(grid_run).to_frame()
        >>> list(frame.columns) == list(FRAME_COLUMNS), len(frame)
        (True, 3962)
        >>> frame.query("metric == 'energy_change_point'")[["layer", "value"]].round(1).values.tolist()
        [[6, 15.4]]
        """
        import pandas

        blocks = [pandas.DataFrame({**_run_columns(run), "layer": layer, "context_length": context,
                                    "metric": metric, "value": value})
                  for run in self.graph_runs for metric, layer, context, value in _metrics(run)]
        if not blocks:
            return pandas.DataFrame({column: [] for column in FRAME_COLUMNS})
        frame = pandas.concat(blocks, ignore_index=True)
        return frame.astype({"seed": "int64", "layer": "Int64", "context_length": "Int64", "value": "float64"})


def load_sweep(folder: str | os.PathLike) -> Sweep:
    """Read every complete run in a sweep's output folder (each checked by load_run), or the one run of
    a run folder. Folders being written (``.partial``) and the seeds' aggregates are not runs.

    Raises FileNotFoundError for a folder that does not exist and ValueError for one that holds no
    complete run.

    >>> [run.name for run in load_sweep(grid_run).runs]
    ['synthetic-grid']
    >>> load_sweep(Path(grid_run).parent / "no-such-sweep")
    Traceback (most recent call last):
    ...
    FileNotFoundError: .../no-such-sweep is not a folder; expected a sweep's output folder (icgt run --output) ...
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected a sweep's output folder (icgt run --output) "
                                "or a run folder")
    if is_run(folder):
        return Sweep(folder, (load_run(folder),))
    runs = tuple(load_run(child) for child in sorted(folder.iterdir())
                 if child.is_dir() and not child.name.endswith(".partial") and is_run(child))
    if not runs:
        raise ValueError(f"{folder} holds no complete icgt run: expected run folders with run.json and results.npz, "
                         f"as `icgt run --output {folder}` writes them")
    return Sweep(folder, runs)


def write_table(frame: pandas.DataFrame, path: str | os.PathLike, format: str = "csv") -> None:
    """Write a table whole or not at all (icgt.files.write_atomically): CSV without the index, or parquet,
    which needs pyarrow (``pip install 'icgt[parquet]'``).

    >>> write_table(load_sweep(grid_run).to_frame(), "table.csv")
    >>> Path("table.csv").read_text().splitlines()[0]
    'run,model,preset,graph,control,seed,layer,context_length,metric,value'
    >>> write_table(load_sweep(grid_run).to_frame(), "table.xlsx", format="xlsx")
    Traceback (most recent call last):
    ...
    ValueError: table format 'xlsx' is unknown; expected one of ('csv', 'parquet')
    """
    if format not in TABLE_FORMATS:
        raise ValueError(f"table format {format!r} is unknown; expected one of {TABLE_FORMATS}")
    if format == "parquet":
        require("pyarrow", "writing a table as parquet")
        write_atomically(Path(path), lambda temporary: frame.to_parquet(temporary, index=False))
    else:
        write_atomically(Path(path), lambda temporary: frame.to_csv(temporary, index=False))


def _run_columns(run: Run) -> dict[str, object]:
    """A run's values of RUN_COLUMNS, the same in each of its rows."""
    config = run.info["config"]
    return {"run": run.name, "model": run.model_name, "preset": config.get("preset", "custom"),
            "graph": run.graph_kind, "control": config.get("control", "none"), "seed": config["seed"]}


def _metrics(run: Run) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(metric, layer, context length, value) of a graph run's rows, NaN where layer or context length is none."""
    rows = []
    declared = declared_arrays(run.info)
    curves = {name: (letters, run.arrays[name]) for name, letters in declared.items()}
    curves["energy_z"] = (declared["energy"], run.energy_z())
    for name, (letters, values) in curves.items():
        if letters[:1] != ("L",) or len(letters) not in (2, 3) or letters[1] not in SNAPSHOT_DIMENSIONS:
            continue
        contexts = run.arrays[dimension(letters[1]).labelled_by[0]]
        layer = np.repeat(run.layers, contexts.size).astype(float)
        context = np.tile(contexts, run.layers.size).astype(float)
        if len(letters) == 2:
            rows.append((name, layer, context, values.ravel()))
        else:
            rows += [(f"{name}_{dimension(letters[2]).name}{entry}", layer, context, values[..., entry].ravel())
                     for entry in range(values.shape[2])]
    for renormalized, name in ((False, "accuracy"), (True, "accuracy_renormalized")):
        positions, mean, _ = run.accuracy_curve(renormalized=renormalized)
        rows.append((name, np.full(positions.size, np.nan), positions.astype(float), mean))
    timing_positions = run.arrays["timing_positions"].astype(float)
    for variant, name in enumerate(("timing_accuracy", "timing_accuracy_renormalized")):
        rows.append((name, np.full(timing_positions.size, np.nan), timing_positions,
                     run.arrays["timing_accuracy"][variant]))
    scalars = [(name, np.nan, value) for name, value in run_numbers(run).items()]
    for name, (array, variant) in CHANGE_POINTS.items():
        own = run.arrays[array][0] if variant is None else run.arrays[array][0, variant]
        scalars.append((name, float(run.arrays["lag_layer"]) if name.startswith("energy") else np.nan, own))
    rows += [(name, np.array([layer]), np.array([np.nan]), np.array([value], dtype=float))
             for name, layer, value in scalars]
    return rows
