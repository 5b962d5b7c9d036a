"""Runs the fuzz harnesses one after another, each for a fixed time, and summarises them.

    python tests/fuzz/run.py [--seconds 30] [--output build/fuzz] [TARGET ...]

TARGET is gguf, bundle, edges or config (default: all). Each harness starts from its seed corpus
(tests/fuzz/corpus/TARGET, never written to) and grows a working corpus in OUTPUT/TARGET/corpus;
an input that breaks the property is written to OUTPUT/TARGET/ as crash-<sha1> (timeout-, oom-),
which `python tests/fuzz/fuzz_TARGET.py FILE` replays. Prints executions per harness; exits 1 on
any finding.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
TARGETS = ("gguf", "bundle", "bundle_zip", "edges", "config")


def run_one(target: str, seconds: int, output: Path) -> dict:
    folder = output / target
    shutil.rmtree(folder, ignore_errors=True)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    command = [sys.executable, str(FUZZ_DIR / f"fuzz_{target}.py"), f"-max_total_time={seconds}",
               "-timeout=30", "-rss_limit_mb=4096", "-print_final_stats=1", f"-artifact_prefix={folder}/",
               str(corpus), str(FUZZ_DIR / "corpus" / target)]
    started = time.monotonic()
    log = folder / "fuzz.log"
    with open(log, "w") as out:
        # A hung target still ends: libFuzzer's -timeout catches one input, this catches the rest.
        try:
            status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 300).returncode
        except subprocess.TimeoutExpired:
            status = -1
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", text) or re.findall(r"Done (\d+) runs", text)
    artifacts = sorted(str(path) for path in folder.iterdir() if re.match(r"(crash|timeout|oom|leak)-", path.name))
    return {"target": target, "status": status, "runs": int(runs[-1]) if runs else None, "seconds": elapsed,
            "corpus": sum(1 for _ in corpus.iterdir()), "artifacts": artifacts, "log": log, "text": text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=int, default=30, help="fuzzing time per harness (default 30)")
    parser.add_argument("--output", type=Path, default=FUZZ_DIR.parent.parent / "build" / "fuzz")
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; expected some of {', '.join(TARGETS)}")
    results = []
    for target in args.targets or TARGETS:
        print(f"== fuzz {target}: {args.seconds} s", flush=True)
        result = run_one(target, args.seconds, args.output.resolve())
        results.append(result)
        if result["status"] != 0:
            print("\n".join(result["text"].splitlines()[-40:]))
            print(f"FINDING in {target}: {', '.join(result['artifacts']) or 'no input saved'}; log {result['log']}")
    print(f"{'target':8} {'executions':>10} {'seconds':>8} {'exec/s':>8} {'corpus':>7}  result")
    for r in results:
        runs = r["runs"] if r["runs"] is not None else "?"
        rate = f"{r['runs'] / r['seconds']:.0f}" if r["runs"] else "?"
        verdict = "clean" if r["status"] == 0 else f"FINDING (status {r['status']})"
        print(f"{r['target']:8} {runs:>10} {r['seconds']:>8.1f} {rate:>8} {r['corpus']:>7}  {verdict}")
    return 0 if all(r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
