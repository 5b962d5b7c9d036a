"""The real tokenizer of each model, and the token ids of concept words.

Every tokenizer here is a ``tokenizers.Tokenizer`` (the Hugging Face fast-tokenizer backend):
converted by transformers from a GGUF file's metadata or a checkpoint folder at export, and read
back from a bundle's tokenizer.json afterwards (``icgt.models.bundles.load_tokenizer``), so that using a
bundle needs no transformers. The word lists are in ``icgt.models.words``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tokenizers import Tokenizer

from ..extras import require
# The word lists live in icgt.models.words; config, experiment and tests import them from here too.
from .words import DAY_NAMES, DEFAULT_WORDS, PROTOCOL_WORDS, SPARE_NOUNS  # noqa: F401

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class SplitWordsError(ValueError):
    """Some concept words are not exactly one token; ``splits`` maps each to its pieces."""

    def __init__(self, splits: dict[str, list[str]]) -> None:
        self.splits = splits
        described = "; ".join(f"{word!r} -> {pieces!r}" for word, pieces in splits.items())
        super().__init__(
            f"{len(splits)} concept word(s) are not exactly one token with a leading space: {described}. "
            "Substitute single-token words (icgt.models.tokens.substitute_split_words helps)."
        )

    def __reduce__(self):  # pickled from its splits (a Ray worker's error reaches the driver so)
        return type(self), (self.splits,)


def concept_token_ids(tokenizer: Tokenizer, words: list[str] | tuple[str, ...]) -> list[int]:
    """The token id of " word" for each word; SplitWordsError names every word that is not one token.

    >>> tokenizer = icgt.load_tokenizer("smollm2-135m")
    >>> concept_token_ids(tokenizer, ["apple", "bird"])
    [11977, 5615]
    """
    ids = []
    splits: dict[str, list[str]] = {}
    for word in words:
        text = " " + word
        encoding = tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) == 1:
            ids.append(encoding.ids[0])
        else:
            splits[word] = [text[start:end] for start, end in encoding.offsets]
    if splits:
        raise SplitWordsError(splits)
    return ids


def substitute_split_words(tokenizer: Tokenizer, words: list[str] | tuple[str, ...],
                           spares: tuple[str, ...] = SPARE_NOUNS) -> list[str]:
    """``words`` with every word that is not one token replaced by the next single-token spare noun.

    Raises ValueError when the spares run out.

    >>> tokenizer = icgt.load_tokenizer("smollm2-135m")
    >>> substitute_split_words(tokenizer, ["apple", "xylophone"])
    ['apple', 'cat']
    """
    unused = [spare for spare in spares if spare not in words]
    result = []
    for word in words:
        candidate = word
        while not _is_single_token(tokenizer, candidate):
            if not unused:
                raise ValueError(f"no single-token spare noun left to replace {word!r}; pass more spares")
            candidate = unused.pop(0)
        result.append(candidate)
    return result


def _is_single_token(tokenizer: Tokenizer, word: str) -> bool:
    return len(tokenizer.encode(" " + word, add_special_tokens=False).ids) == 1


def surface_bytes(tokenizer: Tokenizer) -> list[bytes]:
    """Per token id, the bytes the token contributes to decoded text.

    Byte-level BPE (GPT-2 style, "Ġapple") maps each character back to its byte; SentencePiece
    style ("▁apple") turns "▁" into a space and byte-fallback tokens <0xNN> into that byte.
    Added and special tokens contribute their text (e.g. b"<bos>").

    >>> surface_bytes(icgt.load_tokenizer("smollm2-135m"))[11977]
    b' apple'
    """
    spec = json.loads(tokenizer.to_str())
    added = {token["id"]: token["content"] for token in spec.get("added_tokens", [])}
    style = _decoding_style(spec)
    byte_fallback = bool(spec["model"].get("byte_fallback"))
    byte_of_char = {char: byte for byte, char in _gpt2_bytes_to_unicode().items()}
    vocabulary = tokenizer.get_vocab(with_added_tokens=True)
    result = [b""] * (max(vocabulary.values()) + 1)
    for token, token_id in vocabulary.items():
        if token_id in added:
            result[token_id] = added[token_id].encode("utf-8")
        elif style == "byte_level":
            result[token_id] = bytes(byte_of_char[char] for char in token)
        elif byte_fallback and (fallback := _BYTE_FALLBACK.fullmatch(token)) is not None:
            result[token_id] = bytes([int(fallback.group(1), 16)])
        else:
            result[token_id] = token.replace("\u2581", " ").encode("utf-8")
    return result


def _decoding_style(spec: dict) -> str:
    decoder = spec.get("decoder") or {}
    decoders = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    kinds = {d.get("type") for d in decoders}
    if "ByteLevel" in kinds:
        return "byte_level"
    if "Metaspace" in kinds or any(
        d.get("type") == "Replace" and d.get("pattern", {}).get("String") == "\u2581" for d in decoders
    ):
        return "sentencepiece"
    raise ValueError(f"unsupported tokenizer decoder {decoder!r}: expected byte-level BPE or SentencePiece-style")


def _gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def vocabulary_hex(tokenizer: Tokenizer, vocab_size: int) -> str:
    """The bundle's vocabulary.hex: line i is token i's surface bytes in lowercase hex, '\\n'-terminated.

    Lines run over the model's ``vocab_size``: an id the tokenizer lacks gives an empty line.

    >>> vocabulary_hex(icgt.load_tokenizer("smollm2-135m"), 49152).splitlines()[11977]
    '206170706c65'
    """
    surfaces = surface_bytes(tokenizer)
    return "".join((surfaces[i].hex() if i < len(surfaces) else "") + "\n" for i in range(vocab_size))


def tokenizer_json_of_source(source: Path) -> str:
    """The tokenizers JSON of a GGUF file (converted by transformers from its metadata) or checkpoint folder.

    Needs transformers (``pip install 'icgt[export]'``); without it, a MissingExtraError says so.
    """
    source = Path(source)
    transformers = require("transformers", f"converting the tokenizer of {source}")
    if source.is_dir():
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    else:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    return tokenizer.backend_tokenizer.to_str()
