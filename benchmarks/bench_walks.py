"""Random-walk sampling: icgt.WalkSampler against a straightforward vectorised numpy sampler.

    python benchmarks/bench_walks.py

Both draw walks of the same shape on the 4x4 grid (uniform neighbour, stepping back allowed); the
numpy one advances all walks of the batch together, one vectorised step per position.
"""

import numpy as np

import icgt
from common import best_time


def numpy_walks(graph, batch, length, seed):
    """All walks advance together: one vectorised draw per step over a padded neighbour table."""
    rng = np.random.default_rng(seed)
    degrees = np.array([graph.degree(node) for node in range(graph.num_nodes)])
    table = np.zeros((graph.num_nodes, degrees.max()), dtype=np.int64)
    for node in range(graph.num_nodes):
        table[node, : degrees[node]] = graph.neighbours(node)
    walks = np.empty((batch, length), dtype=np.int64)
    walks[:, 0] = np.arange(batch) % graph.num_nodes
    for t in range(1, length):
        current = walks[:, t - 1]
        walks[:, t] = table[current, (rng.random(batch) * degrees[current]).astype(np.int64)]
    return walks


def main():
    grid = icgt.Graph.square_grid(4, 4)
    adjacency = grid.adjacency()
    print(f"{'walks':>6} {'steps':>9} {'icgt (ms)':>10} {'numpy (ms)':>11} {'ratio':>7}")
    for batch, length, repeats in [(16, 1400, 20), (16, 625_000, 3), (1000, 10_000, 3)]:
        sampler = icgt.WalkSampler(grid, seed=0)
        icgt_time, icgt_walks = best_time(lambda: sampler.random_walks(batch, length, start="per_node"), repeats)
        numpy_time, reference = best_time(lambda: numpy_walks(grid, batch, length, 0), repeats)
        for walks in (icgt_walks, reference):  # both must be real walks on the grid
            assert np.all(adjacency[walks[:, :-1], walks[:, 1:]] == 1)
        print(f"{batch:>6} {batch * length:>9} {icgt_time * 1e3:>10.3f} {numpy_time * 1e3:>11.3f} "
              f"{numpy_time / icgt_time:>6.1f}x")


if __name__ == "__main__":
    main()
