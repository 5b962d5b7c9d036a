"""How far the headline numbers of one sweep move in another run of the same settings (say float32
against bfloat16, or two machines), beside how far they move between seeds.

    python -m icgt run --preset grid --model smollm2-135m gemma3-270m --seeds 3 --output runs-f32
    python -m icgt run --preset grid --model smollm2-135m gemma3-270m --seeds 3 --set dtype=bfloat16 --output runs-bf16
    python examples/compare_sweeps.py runs-f32 runs-bf16

Rows: every run present in both folders, each number first / second (difference); then, for each group
of seeds in the second folder, the standard deviation of each number over its seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from icgt.study.aggregate import run_numbers
from icgt.study.run_folder import load_run

KEYS = ("accuracy_at_50", "accuracy_at_400", "accuracy_at_1400", "accuracy_renormalized_at_1400", "deep_alignment",
        "deep_energy_scale_invariant")


def compare(first: Path, second: Path) -> str:
    rows = ["| run | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for folder in sorted(first.iterdir()):
        if (folder / "run.json").is_file() and (second / folder.name / "run.json").is_file():
            a, b = run_numbers(load_run(folder)), run_numbers(load_run(second / folder.name))
            rows.append(f"| {folder.name} | " + " | ".join(f"{a[k]:.3f} / {b[k]:.3f} ({b[k] - a[k]:+.4f})"
                                                         for k in KEYS) + " |")
    for aggregate in sorted(second.glob("*/aggregate.json")):
        record = json.loads(aggregate.read_text())
        per_seed = {key: [v for v in record["numbers"][key]["per_seed"] if v is not None] for key in KEYS}
        rows.append(f"| {record['name']}: sd over {len(record['seeds'])} seeds | "
                    + " | ".join(f"{np.std(per_seed[k], ddof=1):.4f}" if len(per_seed[k]) > 1 else "–" for k in KEYS)
                    + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a sweep's output folder")
    parser.add_argument("second", type=Path, help="another sweep's output folder, with the same run names")
    args = parser.parse_args()
    print(compare(args.first, args.second))


if __name__ == "__main__":
    main()
