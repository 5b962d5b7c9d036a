"""Fuzz experiment configs: a TOML file read by icgt.study.config.load_toml (which ends in from_dict).

Input: the bytes of a TOML file. A config that loads is also built into its graph.
Documented refusals: ValueError (ConfigError is one), TypeError, FileNotFoundError, OSError.

    python tests/fuzz/fuzz_config.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/config
"""

from __future__ import annotations

from fuzz_common import expect, main, remember, scratch_file

ALLOWED = (ValueError, TypeError, FileNotFoundError, OSError)


def _load_config(path) -> None:
    import icgt.study.config

    config = icgt.study.config.load_toml(path)
    config.build_graph()


def test_one_input(data: bytes) -> None:
    remember(data)
    path = scratch_file("input.toml", data)
    expect(lambda: _load_config(path), ALLOWED)


def _load() -> None:
    import icgt.study.config  # noqa: F401


if __name__ == "__main__":
    main(test_one_input, instrument=["icgt", "tomllib"], load=_load)
