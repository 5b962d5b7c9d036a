"""Fuzz a whole bundle file: the zip archive read by icgt's Python side (resolve, read_bundle_file,
read_bundle_config, bundle_for), and with ICGT_FUZZ_LOADER=1 also the C++ loader (ActivationProbe).

Input: the bytes of a bundle (seed: the toy bundle of tests/python/toy_bundle.py, 36 kB).
Documented refusals: ValueError, FileNotFoundError, OSError; RuntimeError from the C++ loader.
The loader is off by default: a damaged archive reaches torch::jit::load, LibTorch's own zip reader
and unpickler, whose crashes are LibTorch's (docs/reliability.md says what was seen).

    python tests/fuzz/fuzz_bundle_zip.py -max_total_time=60 WORK_CORPUS tests/fuzz/corpus/bundle_zip
"""

from __future__ import annotations

import os

from fuzz_common import expect, main, remember, scratch_file

PYTHON_ALLOWED = (ValueError, FileNotFoundError, OSError)
LOADER_ALLOWED = PYTHON_ALLOWED + (RuntimeError,)


def _limit_address_space() -> None:
    """3.5 GiB of address space (libFuzzer stops at 4 GiB resident): LibTorch's unpickler sizes its memo table by an index read from the
    file (one damaged byte asks for 10 GB, docs/reliability.md); std::bad_alloc then ends that load
    with a RuntimeError instead of the fuzzer's out-of-memory stop."""
    import resource

    limit = 7 << 29
    if resource.getrlimit(resource.RLIMIT_AS)[0] != limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def test_one_input(data: bytes) -> None:
    remember(data)
    from icgt.models.bundles import bundle_for, read_bundle_config, read_bundle_file, resolve

    path = scratch_file("input.pt", data)
    expect(lambda: resolve(path), PYTHON_ALLOWED)
    expect(lambda: read_bundle_config(path), PYTHON_ALLOWED)
    expect(lambda: read_bundle_file(path, "vocabulary.hex"), PYTHON_ALLOWED)
    expect(lambda: bundle_for(path, "float32", cache=path.parent / "cache", progress=False), PYTHON_ALLOWED)
    if os.environ.get("ICGT_FUZZ_LOADER"):
        import icgt

        _limit_address_space()

        expect(lambda: icgt.ActivationProbe(path, device="cpu").run([[0, 1, 2]], layers=[0]), LOADER_ALLOWED)


def _load() -> None:
    import icgt.models.bundles  # noqa: F401


if __name__ == "__main__":
    # zipfile itself stays uninstrumented: Python imports it at start-up, before atheris could.
    main(test_one_input, instrument=["icgt"], load=_load)
