"""Fuzz edge lists: Graph.from_edges(n, edges) and a config of graph "custom" with those edges.

Input: text; the first line is the node count, each further line an edge of whitespace-separated
items. An item that reads as an integer is an int (any size, negative too), one that reads as a
float a float, anything else a str; a line of one or three items is an edge of that length. So the
fuzzer reaches wrong types and shapes as well as wrong numbers.
Documented refusals: ValueError (ConfigError is one) and TypeError.

    python tests/fuzz/fuzz_edges.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/edges
"""

from __future__ import annotations

from fuzz_common import expect, main, remember

ALLOWED = (ValueError, TypeError)
#: Graphs up to this many nodes are also queried (adjacency, Laplacian, distances are dense).
QUERY_NODES = 64
#: Graph.from_edges builds any graph that fits in the machine's memory, by design (ten million
#: nodes take 640 MB): inputs asking for a valid graph larger than this are not built, so that the
#: fuzzer spends its time on refusals and small graphs instead of allocating. Counts past the C++
#: int range still go through (they must be refused).
MAX_NODES = 100_000


def _item(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse(data: bytes):
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines:
        return 0, []
    items = lines[0].split()
    count = _item(items[0]) if len(items) == 1 else items
    return count, [tuple(_item(item) for item in line.split()) for line in lines[1:]]


def _too_large(count) -> bool:
    return isinstance(count, int) and MAX_NODES < count < 2**31


def _graph(count, edges) -> None:
    import icgt

    if _too_large(count):
        return
    graph = icgt.Graph.from_edges(count, edges)
    assert graph.num_nodes == count
    if count <= QUERY_NODES:
        graph.is_connected()
        graph.normalized_laplacian()
        graph.shortest_path_lengths()
        graph.sparse_adjacency()
        graph.to_networkx()
        icgt.WalkSampler(graph, seed=0).random_walks(2, 8, start="per_node")
        graph.spectral_embedding(max(1, min(2, count - 1)))


def _config(count, edges) -> None:
    import icgt.study.config

    nodes = [node for edge in edges for node in edge if isinstance(node, int)]
    if nodes and _too_large(1 + max(nodes)):
        # config.py puts no bound on a custom graph's node ids: [[0, 99999991]] builds a graph of
        # 10^8 nodes (6 GB) before finding it disconnected; reported in docs/reliability.md.
        return
    values = {"graph": "custom", "edges": [list(edge) for edge in edges], "sequence_length": 100,
              "energy_window": 5, "pca_window": 20}
    if isinstance(count, int) and 0 < count <= QUERY_NODES:
        values["words"] = [f"w{node}" for node in range(count)]
    icgt.study.config.from_dict(values)


def test_one_input(data: bytes) -> None:
    remember(data)
    count, edges = parse(data)
    expect(lambda: _graph(count, edges), ALLOWED)
    expect(lambda: _config(count, edges), ALLOWED)


def _load() -> None:
    import icgt.study.config  # noqa: F401
    import icgt.graphs  # noqa: F401


if __name__ == "__main__":
    main(test_one_input, instrument=["icgt"], load=_load)
