"""The ``icgt`` command line. Each subcommand is one ``add_<name>_command`` function registered in COMMANDS.

    icgt export smollm2-135m               # export into the cache, print the bundle's path
    icgt export model.gguf --dtype bfloat16 --output model.pt
    icgt run --preset grid                 # the grid experiment on SmolLM2-135M, into runs/
    icgt run --preset grid ring --model smollm2-135m gemma3-270m --output runs   # a resumable sweep
    icgt run --config my.toml --set sequence_length=400 --set layers=[3,5]
    icgt report runs/smollm2-135m-grid     # figures and index.html again, the verdict and key numbers
    icgt table runs --format parquet       # every run of the sweep as one tidy table: runs/table.parquet
    icgt --version

Building the parser imports nothing heavy (its names come from icgt.models.catalog), so ``icgt --help`` is
quick; torch, the compiled core, matplotlib and pandas are imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ._version import __version__
from .extras import MissingExtraError
from .models.catalog import BUILTIN_MODELS, DTYPE_NAMES
from .study.presets import PRESET_NAMES
from .study.tables import TABLE_FORMATS


def add_export_command(subcommands: argparse._SubParsersAction) -> None:
    """Register ``icgt export MODEL [--dtype] [--output]``, which writes a model's bundle and prints its path.

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_export_command(parser.add_subparsers())
    >>> parser.parse_args(["export", "smollm2-135m", "--dtype", "bfloat16"]).dtype
    'bfloat16'
    """
    parser = subcommands.add_parser(
        "export", help="export a model to an icgt bundle (TorchScript + vocabulary + tokenizer)",
        description="Export MODEL to an icgt bundle and print the bundle's path. Without --output the "
                    "bundle goes to the cache ($ICGT_CACHE_DIR, default ~/.cache/icgt) and is reused later.",
    )
    parser.add_argument("model",
                        help=f"a built-in model {BUILTIN_MODELS}, a .gguf file or a Hugging Face checkpoint folder")
    parser.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default="float32", help="weight dtype (default float32)")
    parser.add_argument("--output", type=Path, help="write the bundle here instead of the cache")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .models.bundles import bundle_for, resolve
    from .models.export import export_bundle

    if args.output is None:
        path = bundle_for(args.model, args.dtype)
    else:
        source = resolve(args.model)
        if source.kind == "bundle":
            raise ValueError(f"{source.path} is already a bundle; export takes a built-in name, .gguf or checkpoint")
        path = export_bundle(source.path, args.output, args.dtype, model_name=source.name,
                             source_sha256=source.sha256)
    print(path)
    return 0


def add_run_command(subcommands: argparse._SubParsersAction) -> None:
    """Register ``icgt run``: one experiment, or a sweep over presets x models, with its report.

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_run_command(parser.add_subparsers())
    >>> args = parser.parse_args(["run", "--preset", "grid", "ring", "--set", "seed=3"])
    >>> [config.preset for config in _run_configs(args)], _run_configs(args)[0].seed
    (['grid', 'ring'], 3)
    """
    parser = subcommands.add_parser(
        "run", help="run the in-context graph tracing experiment and write its report",
        description="Run experiments into OUTPUT/<model>-<preset>/ (run.json, results.npz, report/). Complete runs "
                    "already there are kept, so an interrupted sweep resumes where it stopped.",
    )
    parser.add_argument("--preset", nargs="+", type=_preset_name, metavar="PRESET",
                        help=f"paper settings to run: {', '.join(PRESET_NAMES)} (default: grid, unless --config "
                             "is given)")
    parser.add_argument("--config", type=Path, help="a TOML file of experiment settings (docs/usage.md)")
    parser.add_argument("--model", nargs="+",
                        help=f"built-in models {BUILTIN_MODELS}, .gguf files, checkpoint folders or bundles "
                             "(default: smollm2-135m)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any setting, the value written as in TOML (e.g. layers=[3,5], seed=2)")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="repeat every run with seeds 0..N-1, then write each group's aggregate "
                             "(<run>-seeds/: numbers with 95%% intervals, curves per seed)")
    parser.add_argument("--control", nargs="+", default=["none"], choices=["none", "shuffled", "uniform", "random_init"],
                        help="run each setting also as these controls (none: the experiment itself)")
    parser.add_argument("--output", type=Path, default=Path("runs"), help="parent folder of the runs (default runs)")
    parser.add_argument("--force", action="store_true", help="redo runs that are already complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    cluster = parser.add_argument_group(
        "sweeps on a Ray cluster",
        "Each also a key of a config file's [sweep] table; a flag wins over $ICGT_EXECUTOR and $ICGT_RAY_ADDRESS, "
        "which win over the file (docs/usage.md).")
    cluster.add_argument("--executor", choices=["local", "ray"],
                         help="local: the runs one after another in this process (default); ray: each run a task on "
                              "a Ray cluster (pip install 'icgt[ray]')")
    cluster.add_argument("--address", metavar="ADDRESS",
                         help="the Ray cluster: auto (the one 'ray start' made here), HOST:PORT or ray://HOST:PORT "
                              "(default: $RAY_ADDRESS, else a private Ray instance on this machine)")
    cluster.add_argument("--cpus-per-run", type=_positive_number, metavar="N",
                         help="CPUs each run asks Ray for, and its torch threads (default 1)")
    cluster.add_argument("--gpus-per-run", type=_positive_number, metavar="N",
                         help="GPUs each run on a GPU asks Ray for (default 1; 0.5: two runs share a GPU)")
    cluster.add_argument("--max-retries", type=int, metavar="N",
                         help="times Ray retries a run whose worker or node was lost (default 3)")
    cluster.add_argument("--ship-bundles", action="store_const", const=True,
                         help="send bundles to every node through Ray's object store (default: only to nodes that "
                              "cannot read the driver's cache)")
    parser.set_defaults(run=_run_experiments)


def _positive_number(text: str) -> int | float:
    """A positive int or float from the command line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return int(value) if value.is_integer() else value


def _preset_name(name: str) -> str:
    """A --preset value, checked against icgt.study.presets.PRESET_NAMES."""
    if name not in PRESET_NAMES:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(sorted(PRESET_NAMES))})")
    return name


def _run_configs(args: argparse.Namespace) -> list:
    """The validated configs that ``icgt run`` arguments describe, one per (preset or file) x model."""
    from .study import config as configs

    overrides = {}
    for assignment in args.set:
        key, equals, value = assignment.partition("=")
        if not equals:
            raise ValueError(f"--set expects KEY=VALUE, got '{assignment}'")
        try:
            overrides[key.strip()] = configs.tomllib.loads(f"value = {value}")["value"]
        except configs.tomllib.TOMLDecodeError:
            overrides[key.strip()] = value  # a bare word, such as a model path
    models = args.model or [None]
    if args.seeds is not None and not 1 <= args.seeds <= 100:
        raise ValueError(f"--seeds must be from 1 to 100, got {args.seeds}")
    if args.seeds is not None and "seed" in overrides:
        raise ValueError("give --seeds or --set seed=..., not both")
    seeds = [{"seed": seed} for seed in range(args.seeds)] if args.seeds else [{}]
    variants = [{**({"model": model} if model else {}), **({"control": control} if control != "none" else {}), **seed}
                for model in models for control in args.control for seed in seeds]
    if args.config is not None:
        if args.preset:
            raise ValueError("give --preset or --config, not both (a TOML file may name its own preset)")
        return [configs.load_toml(args.config, **overrides, **variant) for variant in variants]
    return [configs.preset(name, **overrides, **variant) for name in (args.preset or ["grid"]) for variant in variants]


#: The flags of ``icgt run`` that are keys of a config file's [sweep] table (icgt.study.executors).
SWEEP_FLAGS = ("executor", "address", "cpus_per_run", "gpus_per_run", "max_retries", "ship_bundles")


def _executor(args: argparse.Namespace):
    """The executor of ``icgt run``'s sweep: the flags, then $ICGT_EXECUTOR and $ICGT_RAY_ADDRESS, then the
    config file's [sweep] table, then the defaults (icgt.study.executors.executor_from_settings).

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_run_command(parser.add_subparsers())
    >>> _executor(parser.parse_args(["run", "--executor", "ray", "--cpus-per-run", "2"])).cpus_per_run
    2
    """
    import os

    from .study.executors import executor_from_settings, sweep_table

    values = sweep_table(args.config) if args.config is not None else {}
    environment = {"executor": os.environ.get("ICGT_EXECUTOR"), "address": os.environ.get("ICGT_RAY_ADDRESS")}
    values.update({key: value for key, value in environment.items() if value})
    values.update({key: getattr(args, key) for key in SWEEP_FLAGS if getattr(args, key) is not None})
    executor = executor_from_settings(values)
    if values.get("executor", "local") == "local":
        given = [f"--{key.replace('_', '-')}" for key in SWEEP_FLAGS[1:] if getattr(args, key) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for sweeps on Ray; add --executor ray")
    return executor


def _run_experiments(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .report.html import format_summary, summarize, timing_line
    from .study.executors import SweepError
    from .study.sweep import run_sweep

    configs = _run_configs(args)
    executor = _executor(args)

    def print_summary(folder: Path) -> None:  # as each run completes, above the sweep's progress bar if any
        tqdm.write(f"{format_summary(summarize(folder))}\n  {timing_line(folder)}\n"
                   f"  figures: {folder / 'report' / 'index.html'}")

    try:
        folders = run_sweep(configs, args.output, force=args.force, progress=not args.quiet, executor=executor,
                            on_run=print_summary)
    except SweepError as error:  # each failure was printed as it happened; the complete groups still sum up
        _aggregate(configs, error.folders)
        print(f"icgt: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    _aggregate(configs, folders)
    return 0


def _aggregate(configs: list, folders: list) -> None:
    """Writes and announces the aggregate of each group of graph runs that differ only in their seed, when
    every run of the group is complete (folders holds None for a run that failed). Mechanism runs have no
    accuracy or class means over context to aggregate: examples/results_tables.py sums up their seeds."""
    from .report.html import write_seeds_figure
    from .report.interactive_seeds import seeds_view
    from .study.aggregate import aggregate_runs
    from .study.sweep import seed_groups

    graph_runs = [(config, folder) for config, folder in zip(configs, folders, strict=True)
                  if config.experiment == "graph"]
    for group in seed_groups([config for config, _ in graph_runs], [folder for _, folder in graph_runs]):
        if None not in group:
            aggregate = aggregate_runs(group)
            write_seeds_figure(group, aggregate / "seeds.png")
            seeds_view(group).save(aggregate / "seeds.html")
            print(f"{aggregate.name}: the {len(group)} seeds summed up in {aggregate / 'aggregate.json'}, "
                  f"{aggregate / 'seeds.png'} and {aggregate / 'seeds.html'} (interactive)")


def add_report_command(subcommands: argparse._SubParsersAction) -> None:
    """Register ``icgt report RUN_FOLDER [--layer L]``, which (re)writes a run's figures and page.

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_report_command(parser.add_subparsers())
    >>> parser.parse_args(["report", "runs/smollm2-135m-grid", "--layer", "20"]).layer
    20
    """
    parser = subcommands.add_parser(
        "report", help="write a run's figures and index.html, print its verdict and key numbers",
        description="(Re)write the report of a run folder written by icgt run: the figures (PNG), summary.json and "
                    "report/index.html, which opens with a verdict in words (does the model follow the graph; do "
                    "the class means take its shape, from which context length, in which blocks). Prints the "
                    "verdict and the key numbers. Needs numpy and matplotlib only, so a run folder copied to "
                    "another machine can be reported there without torch.",
    )
    parser.add_argument("folder", type=Path, help="a run folder written by icgt run")
    parser.add_argument("--layer", type=int, metavar="BLOCK",
                        help="the block (0-based) of the PCA figures and per-block numbers (default: the captured "
                             "block nearest 80%% of the depth)")
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from .report.html import format_summary, summarize, write_report

    page = write_report(args.folder, layer=args.layer)
    print(format_summary(summarize(args.folder, layer=args.layer)))
    print(f"figures: {page}")
    return 0


def add_table_command(subcommands: argparse._SubParsersAction) -> None:
    """Register ``icgt table FOLDER [--format csv|parquet] [--output FILE]``, which writes every run of a
    sweep as one tidy table.

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_table_command(parser.add_subparsers())
    >>> _table_file(parser.parse_args(["table", "runs"]))
    (PosixPath('runs/table.csv'), 'csv')
    >>> _table_file(parser.parse_args(["table", "runs", "--output", "table.parquet"]))
    (PosixPath('table.parquet'), 'parquet')
    """
    parser = subcommands.add_parser(
        "table", help="write every run of a sweep as one tidy table (CSV or parquet) for pandas, R and spreadsheets",
        description="Write the runs of FOLDER (the output folder of icgt run, or one run folder) as one tidy table: "
                    "a row per run, metric, block and context length, in the columns run, model, preset, graph, "
                    "control, seed, layer, context_length, metric, value (docs/usage.md, 'Results as data'). Runs "
                    "of the mechanism experiments are not in it. Prints where it wrote the table.",
    )
    parser.add_argument("folder", type=Path, help="the output folder of icgt run (or a run folder)")
    parser.add_argument("--format", choices=TABLE_FORMATS,
                        help="csv or parquet (default: parquet for an --output ending in .parquet, else csv); "
                             "parquet needs pyarrow (pip install 'icgt[parquet]')")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="the file to write (default: FOLDER/table.csv, or FOLDER/table.parquet)")
    parser.set_defaults(run=_run_table)


def _table_file(args: argparse.Namespace) -> tuple[Path, str]:
    """The path and format of ``icgt table``'s file."""
    format = args.format or ("parquet" if args.output is not None and args.output.suffix == ".parquet" else "csv")
    return (args.output if args.output is not None else args.folder / f"table.{format}"), format


def _run_table(args: argparse.Namespace) -> int:
    from .study.tables import load_sweep, write_table

    sweep = load_sweep(args.folder)
    frame = sweep.to_frame()
    path, format = _table_file(args)
    write_table(frame, path, format)
    tabulated, left_out = len(sweep.graph_runs), len(sweep.runs) - len(sweep.graph_runs)
    print(f"{path}: {len(frame)} rows from {tabulated} run{'s' * (tabulated != 1)}"
          + (f" ({left_out} of the mechanism experiments left out)" if left_out else ""))
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_export_command, add_run_command,
                                                                  add_report_command, add_table_command]


def main(argv: list[str] | None = None) -> int:
    """Run the icgt command line with ``argv`` (default: sys.argv[1:]) and return the exit status.

    Errors in the input (unknown model, missing file, unsupported architecture, bad config) print
    one line ``icgt: error: ...`` and return 1; Ctrl-C returns 130 with nothing half-written.

    >>> main(["export", "smollm2-135m"])
    /.../bundles/smollm2-135m-float32-v4-b179c9523d0e6a0f.pt
    0
    """
    parser = argparse.ArgumentParser(prog="icgt", description="In-context graph tracing in language models.")
    parser.add_argument("--version", action="version", version=f"icgt {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subcommands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, MissingExtraError) as error:
        print(f"icgt: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("icgt: interrupted; complete runs are kept, run the same command again to resume", file=sys.stderr)
        return 130
