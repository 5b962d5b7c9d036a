"""The ``icgt`` command line. Each subcommand is one ``add_<name>_command`` function registered in COMMANDS.

    icgt export smollm2-135m               # export into the cache, print the bundle's path
    icgt export model.gguf --dtype bfloat16 --output model.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def add_export_command(subcommands: argparse._SubParsersAction) -> None:
    """Register ``icgt export MODEL [--dtype] [--output]``, which writes a model's bundle and prints its path.

    >>> parser = argparse.ArgumentParser(prog="icgt")
    >>> add_export_command(parser.add_subparsers())
    >>> parser.parse_args(["export", "smollm2-135m", "--dtype", "bfloat16"]).dtype
    'bfloat16'
    """
    from .bundles import BUILTIN_MODELS
    from .export import DTYPES

    parser = subcommands.add_parser(
        "export", help="export a model to an icgt bundle (TorchScript + vocabulary + tokenizer)",
        description="Export MODEL to an icgt bundle and print the bundle's path. Without --output the "
                    "bundle goes to the cache ($ICGT_CACHE_DIR, default ~/.cache/icgt) and is reused later.",
    )
    parser.add_argument("model",
                        help=f"a built-in model {BUILTIN_MODELS}, a .gguf file or a Hugging Face checkpoint folder")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weight dtype (default float32)")
    parser.add_argument("--output", type=Path, help="write the bundle here instead of the cache")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .bundles import bundle_for, resolve
    from .export import export_bundle

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


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_export_command]


def main(argv: list[str] | None = None) -> int:
    """Run the icgt command line with ``argv`` (default: sys.argv[1:]) and return the exit status.

    Errors in the input (unknown model, missing file, unsupported architecture) print one line
    ``icgt: error: ...`` and return 1.

    >>> main(["export", "smollm2-135m"])
    /.../bundles/smollm2-135m-float32-b179c9523d0e6a0f.pt
    0
    """
    parser = argparse.ArgumentParser(prog="icgt", description="In-context graph tracing in language models.")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subcommands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"icgt: error: {error}", file=sys.stderr)
        return 1
