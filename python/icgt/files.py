"""Content digests of model sources, atomic file writes, and reproducible .npz files."""

from __future__ import annotations

import hashlib
import os
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Files of a checkpoint folder whose content defines the model; their digests make its sha256.
_CHECKPOINT_FILES = ("*.json", "*.safetensors", "tokenizer.model")


def sha256_of(source: str | Path) -> str:
    """The sha256 of a file, or of a checkpoint folder's manifest (name and sha256 of each model file).

    >>> sha256_of(smollm2_gguf)
    'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53'
    """
    source = Path(source)
    if source.is_file():
        return sha256_of_parts([source])
    files = sorted({file for pattern in _CHECKPOINT_FILES for file in source.glob(pattern)})
    manifest = "".join(f"{file.name}\0{sha256_of_parts([file])}\n" for file in files)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def sha256_of_parts(parts: list[Path]) -> str:
    """The sha256 of the concatenation of the files ``parts``.

    >>> sha256_of_parts([]) == hashlib.sha256(b"").hexdigest()
    True
    """
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as file:
            while chunk := file.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` in ``path``'s folder, then rename onto ``path``; on failure remove it.

    A crash therefore never leaves a partial file at ``path``. The temporary file is created with
    the umask's permissions (not mkstemp's 0600), so that the result is readable like any other.

    >>> write_atomically(Path("example.txt"), lambda temporary: temporary.write_text("done"))
    >>> Path("example.txt").read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_npz(path: Path, arrays: dict[str, np.ndarray], *, compress: bool = True) -> None:
    """Save arrays as numpy's .npz (np.load reads it), byte for byte the same for the same arrays.

    numpy's savez stamps each member with the current time; here every member carries a fixed
    date, so that a rerun of a run can be compared with the original file by its bytes.

    >>> write_npz(Path("same.npz"), {"x": np.arange(3)})
    >>> np.load("same.npz")["x"].tolist()
    [0, 1, 2]
    """
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = compression
            with archive.open(member, "w", force_zip64=True) as file:
                np.lib.format.write_array(file, np.asanyarray(array), allow_pickle=False)
