"""Coverage (icgt.study.coverage): coverage against a plain loop, the collapse measure on curves of known spread,
and the known answers through the whole pipeline (tests/python/coverage_model.py): a model whose accuracy is a
function of edge coverage alone collapses across grid sizes against coverage and not against context length; one
whose accuracy is a function of context length alone, the opposite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import icgt
from coverage_model import write_coverage_bundle, words
from icgt.report.coverage import main as coverage_main
from icgt.report.coverage import write_coverage_report
from icgt.study.coverage import (binned, collapse, coverage, coverage_study, families, relative_spread, seen_share)
from icgt.study.run_folder import load_run

SIDES = (3, 4, 5)
SEEDS = (0, 1, 2)
CONFIG = {"sequence_length": 250, "num_sequences": 8, "null_permutations": 10, "bootstrap": 0}


def test_coverage_follows_a_plain_loop():
    generator = np.random.default_rng(0)
    edges = np.array(icgt.Graph.square_grid(3, 3).edges)
    nodes = generator.integers(-1, 9, size=(4, 60))  # -1: a BOS or separator, which shows nothing
    node_share, edge_share = coverage(nodes, edges, 9)
    edge_set = {tuple(sorted(edge)) for edge in edges.tolist()}
    for b in range(4):
        seen_nodes, seen_edges = set(), set()
        for t in range(60):
            if nodes[b, t] >= 0:
                seen_nodes.add(nodes[b, t])
                step = tuple(sorted((nodes[b, t - 1], nodes[b, t]))) if t else None
                if t and nodes[b, t - 1] >= 0 and step in edge_set:
                    seen_edges.add(step)
            assert node_share[b, t] == pytest.approx(len(seen_nodes) / 9)
            assert edge_share[b, t] == pytest.approx(len(seen_edges) / len(edges))


def test_coverage_refuses_what_it_cannot_count():
    with pytest.raises(ValueError, match=r"expects node sequences \[walks, positions\], got shape \(3,\)"):
        coverage(np.array([0, 1, 2]), np.array([[0, 1]]), 3)
    with pytest.raises(ValueError, match="outside 0..2"):
        coverage(np.array([[0, 5]]), np.array([[0, 1]]), 3)
    with pytest.raises(ValueError, match="needs a graph with edges"):
        coverage(np.array([[0, 1]]), np.zeros((0, 2)), 3)
    with pytest.raises(ValueError, match="positive number of distinct ids, got 0"):
        seen_share(np.array([[0]]), 0)


def test_binned_weighs_every_walk_alike():
    x = np.array([[0.1, 0.1, 0.1, 0.6], [0.1, 0.6, 0.6, np.nan]])
    y = np.array([[1.0, 1.0, 1.0, 3.0], [3.0, 5.0, np.nan, 9.0]])
    assert binned(x, y, np.array([0.0, 0.5, 1.0])).tolist() == [2.0, 4.0]


def test_relative_spread_on_curves_of_known_spread():
    same = np.tile(np.linspace(0, 1, 5), (3, 1))
    assert relative_spread(same) == {"spread": 0.0, "relative": 0.0, "bins": 5}
    shifted = np.stack([np.full(4, 0.0), np.full(4, 1.0)])  # the bins explain nothing, the sizes everything
    assert relative_spread(shifted) == {"spread": 0.5, "relative": 1.0, "bins": 4}
    assert relative_spread(np.array([[np.nan, 1.0], [1.0, np.nan]]))["bins"] == 0
    with pytest.raises(ValueError, match=r"two or more curves \[sizes, bins\], got shape \(1, 3\)"):
        relative_spread(np.zeros((1, 3)))


@pytest.fixture(scope="module")
def toy_sweeps(tmp_path_factory):
    """For each toy model (coverage, context), a sweep folder of 3x3, 4x4 and 5x5 grid runs over three seeds."""
    root = tmp_path_factory.mktemp("coverage")
    sweeps = {}
    for kind in ("coverage", "context"):
        for side in SIDES:
            bundle_folder = root / f"{kind}-{side}"
            bundle_folder.mkdir()
            bundle = write_coverage_bundle(bundle_folder / "toy.pt", side, side, kind)  # one name: one model
            for seed in SEEDS:
                icgt.run_experiment({**CONFIG, "preset": f"coverage-grid{side}", "words": words(side * side),
                                     "model": str(bundle), "seed": seed}, output=root / kind, progress=False,
                                    report=False)
        sweeps[kind] = root / kind
    return sweeps


def test_a_model_that_follows_coverage_collapses_against_coverage(toy_sweeps):
    (found,) = coverage_study(toy_sweeps["coverage"])
    assert found["sizes"] == ["3x3", "4x4", "5x5"] and found["seeds"] == list(SEEDS)
    skill = found["skill"]
    assert skill["coverage"]["mean"] < 0.1 < 0.2 < skill["context"]["mean"]
    assert skill["reading"] == "coverage" and skill["difference"]["ci95"][0] > 0
    # Its skill is its edge coverage: the binned curve follows the bins' centres.
    centres = (found["coverage_bin_edges"][:-1] + found["coverage_bin_edges"][1:]) / 2
    assert np.nanmax(np.abs(found["curves"]["4x4"]["skill"]["coverage"] - centres)) < 0.06
    reached = found["edge_coverage_reached"]
    assert reached["3x3"][0.5] < reached["4x4"][0.5] < reached["5x5"][0.5]


def test_a_model_that_follows_context_length_collapses_against_context(toy_sweeps):
    (found,) = coverage_study(toy_sweeps["context"])
    skill = found["skill"]
    assert skill["context"]["mean"] < 1e-6 and skill["coverage"]["mean"] > 0.3
    assert skill["reading"] == "context length" and skill["difference"]["ci95"][1] < 0


def test_the_figures_json_and_table(toy_sweeps, tmp_path):
    folder = write_coverage_report(toy_sweeps["coverage"], tmp_path / "out")
    assert (folder / "coverage-toy-grid.png").is_file()
    study = json.loads((folder / "coverage.json").read_text())
    assert study[0]["skill"]["reading"] == "coverage" and len(study[0]["coverage_bin_edges"]) == 11
    tables = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "examples" / "results_tables.py"),
                             str(toy_sweeps["context"])], capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr
    section = tables.stdout.split("### Coverage")[1].split("###")[0]
    assert "| toy | grid (3x3, 4x4, 5x5) | none | 3 | skill |" in section and "| context length |" in section


def test_a_sweep_without_sizes_is_refused_with_the_command_that_makes_one(toy_sweeps, tmp_path, capsys):
    one_size = [load_run(folder) for folder in sorted(toy_sweeps["coverage"].iterdir()) if "grid3" in folder.name]
    with pytest.raises(ValueError, match="no runs of one setting over two or more graph sizes; run e.g. icgt run"):
        coverage_study(one_size)
    with pytest.raises(SystemExit) as exit_code:
        coverage_main([str(tmp_path)])
    assert exit_code.value.code == 1 and "no runs of one setting" in capsys.readouterr().err
    runs = [load_run(folder) for folder in sorted(toy_sweeps["coverage"].iterdir())]
    (family,) = families(runs)
    del family["runs"][0]["5x5"], family["runs"][1]["4x4"], family["runs"][2]["3x3"]  # no seed ran every size
    with pytest.raises(ValueError, match=r"no seed ran every size \['3x3', '4x4', '5x5'\]"):
        collapse(family)
