"""How much of a model's next-token probability goes to the day words, along a walk on the days ring,
along the plain week, and along the same walk with seven nouns in place of the days.

    python -m icgt export qwen2.5-coder-1.5b           # once: the float32 bundle (a few minutes)
    python examples/day_word_mass.py                   # Qwen2.5-Coder-1.5B, sequences of 1400 words
    python examples/day_word_mass.py gemma3-270m --length 400

Three sequences, each BOS then ``--length`` words, one forward pass each:

- days walk: walk 0 of the days preset (the ring Monday, Friday, Tuesday, Thursday, Sunday,
  Wednesday, Saturday; seed ``--seed``), as ``icgt run --preset days`` draws it;
- plain week: Monday, Tuesday, ..., Sunday, repeated; its valid next day is the week's;
- nouns walk: the same walk with the seven words of the model's ring of 7 (its default words).

At each position (words seen) it prints the next-token probability on the seven words together (mass),
on the valid next words (accuracy, as a run reads it), their ratio (renormalised; chance 2/7 = 0.286)
the entropy of the whole next-token distribution in nats, and the likeliest next tokens
(icgt.study.word_mass). A renormalised accuracy means something only where the mass is not negligible.
"""

from __future__ import annotations

import argparse

import numpy as np

import icgt
from icgt.hardware import describe_line
from icgt.models.words import DAY_NAMES
from icgt.study.compute import concept_words, sample_sequences
from icgt.study.config import preset
from icgt.study.word_mass import word_mass

POSITIONS = (3, 5, 10, 20, 50, 100, 200, 400, 1400)


def sequences(model: str, length: int, seed: int) -> dict[str, tuple[icgt.Graph, np.ndarray]]:
    """{name: (graph labelled with its words, nodes [1, 1 + length] with the BOS first)} of the three
    sequences."""
    # The windows play no part in the walk; at 1 they let a short length pass the config's checks.
    days = preset("days", model=model, num_sequences=1, sequence_length=length, seed=seed, energy_window=1,
                  pca_window=1)
    ring = days.build_graph()                                    # labelled with the ring's day order
    walk, _ = sample_sequences(days, ring)
    week = days.build_graph()
    week.labels = list(DAY_NAMES)                                # the same ring of 7, in weekly order
    plain_week = np.concatenate([[icgt.NOT_A_NODE], np.arange(length) % 7])[None]
    nouns = days.build_graph()
    nouns.labels = concept_words(preset("ring", model=model), 7)  # the model's first seven default words
    return {"days walk": (ring, walk), "plain week": (week, plain_week), "nouns walk": (nouns, walk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="qwen2.5-coder-1.5b",
                        help="a built-in model, .gguf, checkpoint folder or bundle (default: qwen2.5-coder-1.5b)")
    parser.add_argument("--length", type=int, default=1400, help="words per sequence (default 1400)")
    parser.add_argument("--seed", type=int, default=0, help="the days preset's seed (default 0)")
    parser.add_argument("--positions", type=int, nargs="+", default=None,
                        help=f"words seen at each printed row (default: {' '.join(map(str, POSITIONS))}, "
                             "those within the length, and the length)")
    parser.add_argument("--top", type=int, default=3, help="likeliest next tokens printed per row (default 3)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="the bundle's dtype (default float32: bfloat16 is far slower on a CPU without it)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    args = parser.parse_args()
    if args.length < 1:
        parser.error(f"--length must be at least 1 word, got {args.length}")
    positions = args.positions or sorted({p for p in POSITIONS if p <= args.length} | {args.length})
    if args.top < 0:
        parser.error(f"--top must be 0 or more tokens, got {args.top}")
    outside = [p for p in positions if not 1 <= p <= args.length]
    if outside:
        parser.error(f"--positions must be words seen, 1..{args.length} (--length); got {outside}")

    probe = icgt.ActivationProbe(icgt.bundle_for(args.model, args.dtype), device=args.device)
    print(f"{args.model}, {str(probe.dtype).removeprefix('torch.')} on {probe.device} "
          f"({describe_line() if probe.device.type == 'cpu' else probe.device}); "
          f"{args.length} words per sequence, days preset seed {args.seed}", flush=True)
    for name, (graph, nodes) in sequences(args.model, args.length, args.seed).items():
        found = word_mass(probe, graph, nodes, positions, top_k=args.top)
        print(f"\n{name}: {' '.join(graph.labels)}\n")
        print("| words seen | mass on the 7 words | accuracy | renormalised | entropy (nats) | likeliest next tokens |")
        print("|---|---|---|---|---|---|")
        for column, position in enumerate(found.positions):
            print(f"| {position} | {found.mass[0, column]:.3g} | {found.accuracy[0, column]:.3g} | "
                  f"{found.renormalized[0, column]:.3f} | {found.entropy[0, column]:.2f} | "
                  f"{top_tokens(probe, found.top_ids[0, column], found.top_probs[0, column])} |", flush=True)


def top_tokens(probe: icgt.ActivationProbe, ids: np.ndarray, probs: np.ndarray) -> str:
    """Tokens as Python literals (newlines visible) with their probabilities, for a Markdown cell."""
    return ", ".join(f"{probe.token_str(int(i))!r} {p:.2g}" for i, p in zip(ids, probs)).replace("|", "\\|")


if __name__ == "__main__":
    main()
