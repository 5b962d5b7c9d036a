"""Results as data: Run.to_xarray against the arrays it came from (synthetic runs and real runs of every
experiment on the toy bundle), Sweep.to_frame against rows computed here by hand on a sweep of 2 seeds x
2 controls, and ``icgt table`` writing CSV and parquet that pandas reads back."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas
import pytest
from synthetic_run import results, run_info, write_intervention_run, write_run, write_synthetic_run
from test_package import fresh
from toy_bundle import write_toy_bundles

from icgt.cli import main
from icgt.study import compute, run_store
from icgt.study import config as configs
from icgt.study.run_folder import (DAYS_ARRAYS, DIMENSIONS, HELDOUT_ARRAYS, LATER_ARRAYS, MECHANISM_ARRAYS,
                                   OPTIONAL_ARRAYS, RESULT_ARRAYS, TWO_GRAPH_ARRAYS, Run, declared_arrays, load_run)
from icgt.study.tables import FRAME_COLUMNS, load_sweep, write_table

DOCS = Path(__file__).parents[2] / "docs"
#: Every table of arrays the run format declares.
ARRAY_TABLES = [RESULT_ARRAYS, DAYS_ARRAYS, HELDOUT_ARRAYS, TWO_GRAPH_ARRAYS, LATER_ARRAYS, OPTIONAL_ARRAYS,
                *MECHANISM_ARRAYS.values()]
#: Small settings for real runs of every experiment on the toy bundle (about 4 s in all on 2 cores).
TOY = {"graph": "grid", "graph_size": [4, 4], "words": [f"w{i}" for i in range(1, 17)], "num_sequences": 4,
       "sequence_length": 40, "energy_window": 10, "pca_window": 20, "intervention_window": 30,
       "null_permutations": 10, "bootstrap": 4, "score_length": 8, "score_sequences": 2, "random_draws": 2,
       "bos_variants": ["excluded", "included"]}
#: A preset of each experiment, and the graph experiment with held-out edges.
PRESETS = ("grid", "grid-heldout", "grid-intervention", "grid-heads", "grid-subspace", "grid-toy-mixing")
CONTROLS, SEEDS = ("none", "shuffled"), (0, 1)


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return {"grid": load_run(write_synthetic_run(folder / "grid", "grid")),
            "days": load_run(write_synthetic_run(folder / "days", "days")),
            "intervention": load_run(write_intervention_run(folder / "intervention"))}


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """A real run of each experiment on the toy bundle, written as icgt run writes it (without the report)."""
    folder = tmp_path_factory.mktemp("toy-runs")
    bundle = write_toy_bundles(folder / "bundles")
    runs = {}
    for preset in PRESETS:
        config = configs.preset(preset, **TOY, model=str(bundle))
        (folder / preset).mkdir()
        run_store.write_run(folder / preset, preset, compute.compute_run(config, progress=False), report=False)
        runs[preset] = load_run(folder / preset)
    return runs


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """2 seeds x 2 controls of the synthetic grid, beside what a sweep's folder also holds: a mechanism run,
    a run being written (.partial) and the seeds' aggregate."""
    folder = tmp_path_factory.mktemp("sweep")
    for control in CONTROLS:
        for seed in SEEDS:
            info = run_info("grid")
            info["config"].update(seed=seed, control=control)
            info["name"] = f"toy-grid{'' if control == 'none' else '-' + control}{f'-seed{seed}' if seed else ''}"
            write_run(folder / info["name"], info, results(info, seed))
    write_intervention_run(folder / "toy-grid-intervention")
    write_synthetic_run(folder / "toy-grid-seed2.partial", seed=2)
    (folder / "toy-grid-seeds").mkdir()
    (folder / "toy-grid-seeds" / "aggregate.json").write_text("{}")
    return folder


# Run.to_xarray


def test_every_dimension_of_the_format_has_a_name_of_its_own():
    letters = {letter for table in ARRAY_TABLES for dims in table.values() for letter in dims}
    assert letters == set(DIMENSIONS)
    names = [dimension.name for dimension in DIMENSIONS.values()]
    assert len(set(names)) == len(names)
    arrays = {name for table in ARRAY_TABLES for name in table}
    assert not arrays & {*names, "word"}  # a coordinate never shadows an array
    for dimension in DIMENSIONS.values():
        assert set(dimension.labelled_by) <= arrays


def test_the_names_are_those_of_the_run_format_document():
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", (DOCS / "run-format.md").read_text(), re.MULTILINE)
    assert dict(rows) == {letter: dimension.name for letter, dimension in DIMENSIONS.items()}


def check_round_trip(run: Run) -> None:
    """Every array of the run is in its Dataset, unchanged: as a variable along its named dimensions, or
    as the coordinate it labels; the config is the attrs, the words label the nodes."""
    dataset = run.to_xarray()
    declared = {**declared_arrays(run.info), **LATER_ARRAYS, **OPTIONAL_ARRAYS}
    coordinates = {name: variable.attrs["array"] for name, variable in dataset.coords.items()
                   if "array" in variable.attrs}
    assert set(dataset.data_vars) | set(coordinates.values()) == set(run.arrays)
    assert not set(dataset.data_vars) & set(coordinates.values())
    for name, values in run.arrays.items():
        if name in dataset.data_vars:
            assert dataset[name].dims == tuple(DIMENSIONS[letter].name for letter in declared[name]), name
            stored = dataset[name].values
        else:
            coordinate = next(dimension for dimension, source in coordinates.items() if source == name)
            assert (dataset[coordinate].dims, declared[name]) == ((coordinate,), (next(
                letter for letter, dimension in DIMENSIONS.items() if dimension.name == coordinate),))
            stored = dataset[coordinate].values
        assert stored.dtype == values.dtype, name
        np.testing.assert_array_equal(stored, values, err_msg=name)
    for letter, dimension in DIMENSIONS.items():
        if dimension.name in dataset.dims and dimension.name not in coordinates:
            expected = list(dimension.labels) or list(range(dataset.sizes[dimension.name]))
            assert dataset[dimension.name].values.tolist() == expected, letter
    assert dataset.attrs == run.info["config"]
    if "node" in dataset.dims:  # the mechanism runs have no array along the nodes
        assert dataset["word"].values.tolist() == run.labels and dataset["word"].dims == ("node",)
    assert not [dimension for dimension in dataset.dims if "_dim_" in dimension]


@pytest.mark.parametrize("kind", ["grid", "days", "intervention"])
def test_to_xarray_holds_every_array_of_a_synthetic_run(synthetic_runs, kind):
    check_round_trip(synthetic_runs[kind])


@pytest.mark.parametrize("preset", PRESETS)
def test_to_xarray_names_every_array_of_a_real_run(toy_runs, preset):
    run = toy_runs[preset]
    assert set(run.arrays) <= set(declared_arrays(run.info)) | set(LATER_ARRAYS) | set(OPTIONAL_ARRAYS)
    check_round_trip(run)


def test_the_coordinates_select_what_the_arrays_index(synthetic_runs, toy_runs):
    run = synthetic_runs["grid"]
    dataset = run.to_xarray()
    layer, position = 5, int(run.arrays["energy_positions"][7])
    assert float(dataset["energy"].sel(layer=layer, energy_position=position)) == run.arrays["energy"][5, 7]
    renormalized = dataset["accuracy_change_points"].sel(accuracy_variant="renormalized", resample=0)
    assert float(renormalized) == run.arrays["accuracy_change_points"][0, 1]
    intervention = synthetic_runs["intervention"].to_xarray()
    moved = intervention["intervention_mass"].sel(intervention_condition="moved")
    np.testing.assert_array_equal(moved, synthetic_runs["intervention"].arrays["intervention_mass"][1])
    heads = toy_runs["grid-heads"]
    by_set = heads.to_xarray()["head_accuracy"].sel(head_set="induction", bos_included=True,
                                                      ablation_kind=str(heads.arrays["head_ablation_kinds"][0]))
    np.testing.assert_array_equal(by_set, heads.arrays["head_accuracy"][0, 1, 1])


def test_an_undeclared_array_keeps_its_values_along_dimensions_named_after_it(synthetic_runs):
    run = synthetic_runs["grid"]
    extra = np.arange(6.0).reshape(2, 3)
    dataset = Run(run.folder, run.info, {**run.arrays, "extra": extra}).to_xarray()
    assert dataset["extra"].dims == ("extra_dim_0", "extra_dim_1")
    np.testing.assert_array_equal(dataset["extra"].values, extra)


def test_the_attrs_are_a_copy_of_the_config(synthetic_runs):
    run = synthetic_runs["grid"]
    run.to_xarray().attrs["pca_positions"].append(999)
    assert 999 not in run.info["config"]["pca_positions"]


# Sweep.to_frame


def test_load_sweep_reads_the_complete_runs_in_name_order(sweep_folder):
    sweep = load_sweep(sweep_folder)
    assert [run.folder.name for run in sweep.runs] == ["toy-grid", "toy-grid-intervention", "toy-grid-seed1",
                                                       "toy-grid-shuffled", "toy-grid-shuffled-seed1"]
    assert [run.folder.name for run in sweep.graph_runs] == ["toy-grid", "toy-grid-seed1", "toy-grid-shuffled",
                                                             "toy-grid-shuffled-seed1"]
    assert [run.folder.name for run in load_sweep(sweep_folder / "toy-grid-seed1").runs] == ["toy-grid-seed1"]


def test_load_sweep_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder is not a folder"):
        load_sweep(tmp_path / "no-such-folder")
    (tmp_path / "file.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="file.txt is not a folder"):
        load_sweep(tmp_path / "file.txt")
    write_synthetic_run(tmp_path / "run.partial")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="holds no complete icgt run: expected run folders with run.json"):
        load_sweep(tmp_path)


def test_load_sweep_names_a_broken_run(tmp_path):
    write_synthetic_run(tmp_path / "broken")
    (tmp_path / "broken" / "results.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken/results.npz is not a readable numpy .npz archive"):
        load_sweep(tmp_path)


def hand_accuracy_at(run: Run, length: int, renormalized: bool = False) -> float:
    """accuracy_at_<length> by hand: every scored value within 10% of the length, over all sequences."""
    values = run.arrays["accuracy_renormalized" if renormalized else "accuracy"]
    positions = np.arange(values.shape[1])
    near = (positions >= length / 1.1) & (positions <= length * 1.1)
    return float(values[:, near][run.arrays["scored"][:, near]].mean())


def hand_rows(run: Run) -> dict[tuple[str, object, object], float]:
    """A few rows of a run by hand, (metric, layer, context length) -> value; None where the table is empty."""
    arrays = run.arrays
    scored_at_57 = arrays["scored"][:, 57]
    deep = [6, 7]  # blocks 6 and 7 of 8: the deep third
    last = np.flatnonzero(np.isfinite(arrays["spectral_alignment"][deep]).all(0))[-1]
    return {
        ("energy", 3, 200): arrays["energy"][3, 19],                        # energy_positions 10, 20, ...
        ("energy_p_value", 7, 400): arrays["energy_p_value"][7, 39],
        ("energy_z", 6, 300): ((arrays["energy"][6, 29] - arrays["energy_null_mean"][6, 29])
                               / arrays["energy_null_sd"][6, 29]),
        ("timing_energy", 0, int(arrays["timing_positions"][5])): arrays["timing_energy"][0, 5],
        ("spectral_alignment", 6, 100): arrays["spectral_alignment"][6, 9],
        ("pca_explained_pc1", 2, 100): arrays["pca_explained"][2, 2, 1],   # pca_positions 25, 50, 100, 400
        ("accuracy", None, 57): arrays["accuracy"][scored_at_57, 57].mean(),
        ("accuracy_renormalized", None, 57): arrays["accuracy_renormalized"][scored_at_57, 57].mean(),
        ("timing_accuracy_renormalized", None, int(arrays["timing_positions"][-1])): arrays["timing_accuracy"][1, -1],
        ("accuracy_at_400", None, None): hand_accuracy_at(run, 400),
        ("accuracy_renormalized_at_50", None, None): hand_accuracy_at(run, 50, renormalized=True),
        ("deep_alignment", None, None): arrays["spectral_alignment"][deep, last].mean(),
        ("layers_below_null", None, None): 3.0,     # blocks 5, 6 and 7 have p = 0.001 late
        ("layers_captured", None, None): 8.0,
        ("energy_change_point", 6, None): arrays["energy_change_points"][0],  # timed at lag_layer 6
        ("accuracy_renormalized_change_point", None, None): arrays["accuracy_change_points"][0, 1],
        ("energy_minimum_point", 6, None): arrays["energy_minimum_points"][0],
        ("accuracy_rise_point", None, None): arrays["accuracy_rise_points"][0, 0],
    }


def test_to_frame_has_a_row_per_run_metric_layer_and_context_length(sweep_folder):
    sweep = load_sweep(sweep_folder)
    frame = sweep.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert {column: str(dtype) for column, dtype in frame.dtypes.items()
            if column in ("seed", "layer", "context_length", "value")} == {
        "seed": "int64", "layer": "Int64", "context_length": "Int64", "value": "float64"}
    assert frame.groupby(["control", "seed"]).size().to_dict() == {
        (control, seed): len(frame) // 4 for control in CONTROLS for seed in SEEDS}
    assert set(frame["run"]) == {run.name for run in sweep.graph_runs}  # the mechanism run is left out
    for run in sweep.graph_runs:
        rows = frame[frame["run"] == run.name]
        assert rows[["model", "preset", "graph", "control", "seed"]].drop_duplicates().values.tolist() == [
            ["toy-8-layers", "grid", "grid", run.info["config"]["control"], run.info["config"]["seed"]]]
        arrays, layers = run.arrays, 8
        scored_positions = int(arrays["scored"].any(0).sum())
        expected = (layers * (6 * arrays["energy_positions"].size + arrays["timing_positions"].size
                              + 2 * arrays["alignment_positions"].size + 4 * arrays["pca_positions"].size)
                    + 2 * scored_positions + 2 * arrays["timing_positions"].size + 10 + 6)
        assert len(rows) == expected
        assert not rows.duplicated(["metric", "layer", "context_length"]).any()
        for (metric, layer, context), value in hand_rows(run).items():
            chosen = rows[(rows["metric"] == metric)
                          & (rows["layer"].isna() if layer is None else rows["layer"] == layer)
                          & (rows["context_length"].isna() if context is None else rows["context_length"] == context)]
            assert len(chosen) == 1, (run.name, metric, layer, context)
            assert chosen["value"].iloc[0] == pytest.approx(value, rel=1e-12), (run.name, metric)


def test_to_frame_keeps_nan_where_the_run_has_no_value(sweep_folder):
    frame = load_sweep(sweep_folder / "toy-grid").to_frame()
    first = frame[(frame["metric"] == "energy") & (frame["context_length"] == 10)]
    assert len(first) == 8 and first["value"].isna().all()  # no energy at the first snapshot
    assert frame.loc[frame["metric"] == "accuracy_at_1400", "value"].isna().all()  # the walks end at 400


def test_to_frame_of_mechanism_runs_alone_is_empty_with_the_columns(tmp_path):
    write_intervention_run(tmp_path / "intervention")
    frame = load_sweep(tmp_path).to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS and frame.empty


def test_a_days_run_has_a_metric_per_pc_pair(synthetic_runs):
    run = synthetic_runs["days"]
    frame = load_sweep(run.folder).to_frame()
    ring = frame[(frame["metric"] == "ring_alignment_pc_pair1") & (frame["layer"] == 4)]
    assert ring["context_length"].tolist() == run.arrays["pca_positions"].tolist()
    np.testing.assert_array_equal(ring["value"], run.arrays["ring_alignment"][4, :, 1])


# icgt table


def as_written(frame: pandas.DataFrame) -> pandas.DataFrame:
    """A frame as a file gives it back: the nullable integers of CSV are floats."""
    return frame.astype({"layer": "float64", "context_length": "float64"})


def test_icgt_table_writes_csv_into_the_sweep_by_default(sweep_folder, capsys):
    assert main(["table", str(sweep_folder)]) == 0
    path = sweep_folder / "table.csv"
    assert capsys.readouterr().out.strip() == (f"{path}: {len(load_sweep(sweep_folder).to_frame())} rows from 4 runs "
                                               "(1 of the mechanism experiments left out)")
    read = pandas.read_csv(path)
    pandas.testing.assert_frame_equal(as_written(read), as_written(load_sweep(sweep_folder).to_frame()),
                                      check_dtype=False)
    path.unlink()


@pytest.mark.parametrize("arguments", [["--format", "parquet", "--output", "{tmp}/out/table.pq"],
                                       ["--output", "{tmp}/table.parquet"]])
def test_icgt_table_writes_parquet_that_keeps_the_types(sweep_folder, tmp_path, arguments, capsys):
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    assert main(["table", str(sweep_folder), *arguments]) == 0
    path = Path(arguments[-1])
    assert capsys.readouterr().out.startswith(f"{path}: ")
    read = pandas.read_parquet(path)
    expected = load_sweep(sweep_folder).to_frame()
    pandas.testing.assert_frame_equal(read, expected, check_dtype=False)
    assert {column: str(read[column].dtype) for column in ("seed", "layer", "value")} == {
        "seed": "int64", "layer": "Int64", "value": "float64"}


def test_icgt_table_of_a_folder_without_runs_is_one_error_line(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"icgt: error: {tmp_path} holds no complete icgt run") and error.count("\n") == 1
    assert main(["table", str(tmp_path / "missing")]) == 1
    assert "missing is not a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_pyarrow_names_the_extra_and_writes_nothing(sweep_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    assert main(["table", str(sweep_folder), "--output", str(tmp_path / "table.parquet")]) == 1
    assert "pip install 'icgt[parquet]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file(synthetic_runs, tmp_path):
    frame = load_sweep(synthetic_runs["grid"].folder).to_frame()
    with pytest.raises(ValueError, match="table format 'json' is unknown"):
        write_table(frame, tmp_path / "table.json", format="json")
    failing = frame.assign(value=frame["value"].astype(object))
    failing.loc[0, "value"] = object()  # pyarrow cannot convert it
    with pytest.raises((TypeError, ValueError)):  # pyarrow's ArrowTypeError or ArrowInvalid
        write_table(failing, tmp_path / "table.parquet", format="parquet")
    assert list(tmp_path.iterdir()) == []


def test_results_as_data_are_imported_only_when_used():
    fresh("""
        import sys
        import icgt
        icgt.load_sweep, icgt.load_run
        from icgt.cli import main
        try:
            main(["table", "--help"])
        except SystemExit as exit:
            assert exit.code == 0
        heavy = {"pandas", "xarray", "pyarrow", "torch", "icgt._icgt", "matplotlib"} & set(sys.modules)
        assert not heavy, heavy
    """)
