"""icgt.study.word_mass and examples/day_word_mass.py, against the toy bundle's own forward pass run in
Python (softmax, sums over the word tokens and the neighbours, entropy written out here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_bundle import write_toy_bundles

import icgt
from icgt.models.words import DAY_NAMES, PROTOCOL_WORDS
from icgt.study.compute import sample_sequences
from icgt.study.config import preset
from icgt.study.word_mass import word_mass

SCRIPT = Path(__file__).parents[2] / "examples" / "day_word_mass.py"
NA = icgt.NOT_A_NODE


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_bundles(tmp_path_factory.mktemp("bundles"))


def labelled_ring(n: int, first_word: int) -> icgt.Graph:
    """A ring of n nodes labelled w<first_word>, w<first_word + 1>, ... (one toy token each)."""
    ring = icgt.Graph.ring(n)
    ring.labels = [f"w{first_word + k}" for k in range(n)]
    return ring


def reference(bundle: Path, ring: icgt.Graph, nodes: np.ndarray, positions: list[int]) -> dict[str, np.ndarray]:
    """The same numbers from torch.softmax of the TorchScript bundle's forward, in float64 from the logits."""
    model = torch.jit.load(str(bundle))
    word_ids = [int(label[1:]) for label in ring.labels]                    # " w<k>" is token k in the toy vocabulary
    ids = torch.tensor([[0] + [word_ids[k] for k in row[1:]] for row in nodes])  # BOS is token 0
    with torch.no_grad():
        probs = torch.softmax(model(ids).double(), -1)[:, positions]         # [sequences, positions, vocab]
    n = ring.num_nodes
    out = {key: np.zeros((len(nodes), len(positions))) for key in ("mass", "accuracy", "entropy")}
    out["top_probs"], out["top_ids"] = probs.topk(4, dim=-1)
    for b, row in enumerate(nodes):
        for c, t in enumerate(positions):
            p = probs[b, c]
            valid = [(row[t] - 1) % n, (row[t] + 1) % n]                  # the ring's neighbours of the current node
            out["mass"][b, c] = float(p[word_ids].sum())
            out["accuracy"][b, c] = float(p[[word_ids[k] for k in valid]].sum())
            out["entropy"][b, c] = float(-(p * p.log()).sum())
    out["renormalized"] = out["accuracy"] / out["mass"]
    return {key: np.asarray(value) for key, value in out.items()}


def test_numbers_match_the_bundles_forward_in_python(toy):
    probe = icgt.ActivationProbe(toy)
    rng = np.random.default_rng(3)
    ring = labelled_ring(5, first_word=7)
    steps = rng.choice([-1, 1], size=(2, 40))
    walks = (np.cumsum(steps, axis=1) + np.array([[0], [3]])) % 5
    nodes = np.concatenate([np.full((2, 1), NA), walks], axis=1)
    positions = [1, 2, 9, 25, 40]
    found = word_mass(probe, ring, nodes, positions, top_k=4, max_batch=1)
    expected = reference(toy, ring, nodes, positions)
    assert found.positions.tolist() == positions
    for key, values in expected.items():
        np.testing.assert_allclose(getattr(found, key), values, rtol=2e-5, atol=1e-7, err_msg=key)
    assert found.top_ids.dtype == np.int64 and word_mass(probe, ring, nodes, [3]).top_ids.shape == (2, 1, 0)
    # the numbers depend on the words: another labelling of the same walk gives other masses
    other = word_mass(probe, labelled_ring(5, first_word=20), nodes, positions)
    assert not np.allclose(other.mass, found.mass)
    assert (found.entropy > 0).all() and (found.entropy < np.log(probe.vocab_size)).all()


@pytest.mark.parametrize("nodes, positions, message", [
    ([[0, 1, 2]], [1], r"column 0 of nodes is the BOS and must be NOT_A_NODE \(-1\), got \[0\]"),
    ([[NA, 1, 5, 2]], [1], r"every entry of nodes must be a node of the graph, 0..2; got \[5\]"),
    ([[NA, 1, NA, 2]], [1], r"every entry of nodes must be a node of the graph, 0..2; got \[-1\]"),
    ([NA, 1, 2], [1], r"nodes must be integers \[sequences, 1 \+ length\] with length >= 1, got int64 of shape \[3\]"),
    ([[NA, 1.0, 2.0]], [1], r"nodes must be integers .* got float64 of shape \[1, 3\]"),
    ([[NA, 1, 2]], [0], r"positions must be words seen, 1..2 for sequences of 2 words; got \[0\]"),
    ([[NA, 1, 2]], [], r"positions must be words seen, 1..2 .* got \[\]"),
    ([[NA, 1, 2]], {"top_k": -1}, r"top_k must be an integer 0..50 \(the vocabulary\), got -1"),
    ([[NA, 1, 2]], {"top_k": 2.0}, r"top_k must be an integer 0..50 \(the vocabulary\), got 2.0"),
])
def test_bad_input_says_what_was_expected(toy, nodes, positions, message):
    probe = icgt.ActivationProbe(toy)
    options = positions if isinstance(positions, dict) else {}
    with pytest.raises(ValueError, match=message):
        word_mass(probe, labelled_ring(3, first_word=1), nodes, [1] if options else positions, **options)


def load_example():
    spec = importlib.util.spec_from_file_location("day_word_mass", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_examples_three_sequences():
    example = load_example()
    found = example.sequences("smollm2-135m", 30, seed=2)
    days = preset("days", num_sequences=1, sequence_length=30, seed=2, energy_window=1, pca_window=1)
    walk, _ = sample_sequences(days, days.build_graph())
    ring, days_nodes = found["days walk"]
    assert ring.labels == list(days.words) and np.array_equal(days_nodes, walk)
    week, week_nodes = found["plain week"]
    assert week.labels == list(DAY_NAMES) and week.edges == ring.edges
    assert [week.labels[k] for k in week_nodes[0, 1:9]] == [*DAY_NAMES, "Monday"]
    nouns, noun_nodes = found["nouns walk"]
    assert nouns.labels == list(PROTOCOL_WORDS[:7]) and np.array_equal(noun_nodes, walk)


def test_the_example_prints_what_word_mass_finds(toy):
    # The toy vocabulary has no day names: each reads as the one unknown token, enough to run the script.
    result = subprocess.run([sys.executable, str(SCRIPT), str(toy), "--length", "12", "--positions", "3", "12",
                             "--top", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    graph, nodes = load_example().sequences(str(toy), 12, seed=0)["days walk"]
    probe = icgt.ActivationProbe(toy)
    expected = word_mass(probe, graph, nodes, [3, 12], top_k=2)
    table = result.stdout.split("days walk:")[1].split("plain week:")[0]
    rows = [line for line in table.splitlines() if line.startswith("| 3 |") or line.startswith("| 12 |")]
    tops = [", ".join(f"{probe.token_str(int(i))!r} {p:.2g}" for i, p in zip(expected.top_ids[0, c], expected.top_probs[0, c]))
            for c in range(2)]
    assert rows == [f"| {t} | {expected.mass[0, c]:.3g} | {expected.accuracy[0, c]:.3g} | "
                    f"{expected.renormalized[0, c]:.3f} | {expected.entropy[0, c]:.2f} | {tops[c]} |"
                    for c, t in enumerate([3, 12])]
    assert "nouns walk: apple bird car egg house milk plane" in result.stdout and "plain week: Monday Tuesday" in result.stdout
    refused = subprocess.run([sys.executable, str(SCRIPT), str(toy), "--length", "12", "--positions", "13"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--positions must be words seen, 1..12 (--length); got [13]" in refused.stderr
