"""Fuzz experiment configs: a TOML file read by icgt.config.load_toml (which ends in from_dict).

Input: the bytes of a TOML file. A config that loads is also built into its graph.
Documented refusals: ValueError (ConfigError is one), TypeError, FileNotFoundError, OSError.

    python tests/fuzz/fuzz_config.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/config
"""

from __future__ import annotations

import os

from fuzz_common import Finding, expect, main, remember, scratch_file

ALLOWED = (ValueError, TypeError, FileNotFoundError, OSError)


def known_config_py_finding(error: BaseException) -> str | None:
    """Findings in python/icgt/config.py that docs/reliability.md lists for its owner to fix: tolerated
    until then (a run looks for new ones), reported too with ICGT_FUZZ_STRICT=1. Remove each when fixed."""
    message = str(error)
    if isinstance(error, UnicodeDecodeError):
        return "load_toml: a file that is not UTF-8 (Path.read_text) raises UnicodeDecodeError"
    if type(error).__name__ == "ConfigError" and ("\n" in message or "\r" in message):
        return "ConfigError: strings quoted as '{}', not {!r}: a value with a newline makes a message of several lines"
    if isinstance(error, RuntimeError) and "Could not determine home directory" in message:
        return "validate: Path(model).expanduser() raises RuntimeError for '~name' when no user is called name"
    return None


def _load_config(path) -> None:
    import icgt.config

    config = icgt.config.load_toml(path)
    config.build_graph()


def test_one_input(data: bytes) -> None:
    remember(data)
    path = scratch_file("input.toml", data)
    try:
        expect(lambda: _load_config(path), ALLOWED)
    except Finding as finding:
        if os.environ.get("ICGT_FUZZ_STRICT") or not known_config_py_finding(finding.__cause__):
            raise


def _load() -> None:
    import icgt.config  # noqa: F401


if __name__ == "__main__":
    main(test_one_input, instrument=["icgt", "tomllib"], load=_load)
