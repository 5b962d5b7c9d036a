"""Conversion between icgt.Graph and networkx, so that any networkx topology can be used.

Importing the compiled core attaches these as ``Graph.from_networkx`` and ``Graph.to_networkx``
(icgt/__init__.py); this module does not import the core itself, so that it can be imported by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx

    from ._icgt import Graph


def from_networkx(nx_graph: networkx.Graph) -> Graph:
    """An icgt.Graph with the nodes of ``nx_graph`` in ``list(nx_graph.nodes())`` order.

    Node labels become ``str(node)``, or the node attribute ``label`` where every node has one.
    Directed graphs, multigraphs and self-loops raise ValueError.

    >>> import networkx as nx
    >>> icgt.Graph.from_networkx(nx.petersen_graph()).num_edges
    15
    """
    if nx_graph.is_directed() or nx_graph.is_multigraph():
        raise ValueError(
            f"from_networkx: expected an undirected simple graph, got a {type(nx_graph).__name__}; "
            "convert it with networkx.Graph(g) first"
        )
    from ._icgt import Graph

    nodes = list(nx_graph.nodes())
    index = {node: i for i, node in enumerate(nodes)}
    graph = Graph.from_edges(len(nodes), [(index[a], index[b]) for a, b in nx_graph.edges()])
    given = nx_graph.nodes(data="label")
    labels = [given[node] for node in nodes]
    graph.labels = [str(label) for label in labels] if None not in labels else [str(node) for node in nodes]
    return graph


def to_networkx(graph: Graph) -> networkx.Graph:
    """A networkx.Graph on nodes 0..n-1 with the same edges, each node carrying its ``label``.

    >>> g = icgt.Graph.ring(5).to_networkx()
    >>> sorted(g.edges())[:2], g.nodes[0]["label"]
    ([(0, 1), (0, 4)], '0')
    """
    import networkx as nx

    nx_graph = nx.Graph()
    nx_graph.add_nodes_from((node, {"label": label}) for node, label in enumerate(graph.labels))
    nx_graph.add_edges_from(graph.edges)
    return nx_graph
