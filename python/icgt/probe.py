"""The activation probe with its tokenizer: text in, and hooks scoped to a block of code.

``icgt.ActivationProbe`` is the C++ probe (``icgt._icgt.ActivationProbe``: hooks at every point
of every block, captures, head ablations, attention scores, logits) plus what Python does best:
the bundle's own tokenizer, ``run`` on strings, and ``with probe.hooks({...}):``.

Example:
    >>> probe = icgt.ActivationProbe(icgt.bundle_for("smollm2-135m"), device="cpu")
    >>> probe.to_str_tokens(" apple bird")
    ['<|im_start|>', ' apple', ' bird']
    >>> result = probe.run(" apple bird car", capture=["blocks.2.attn.hook_pattern"], logits="last")
    >>> result.activations["blocks.2.attn.hook_pattern"].shape, result.logits.shape
    (torch.Size([1, 9, 4, 4]), torch.Size([1, 1, 49152]))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from . import _icgt
from .models.bundles import read_bundle_file

#: What run, to_tokens and to_str_tokens accept as input.
Tokens = str | Sequence[str] | torch.Tensor | Sequence[int] | Sequence[Sequence[int]]


class ActivationProbe(_icgt.ActivationProbe):
    """icgt's C++ ActivationProbe with the bundle's tokenizer (see the module docstring)."""

    def __init__(self, bundle: str | os.PathLike, device: str = "auto") -> None:
        super().__init__(bundle, device)
        self.bundle = Path(bundle)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer (a ``tokenizers.Tokenizer``), read from the bundle on first use."""
        return Tokenizer.from_str(read_bundle_file(self.bundle, "tokenizer.json").decode("utf-8"))

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """Token ids [batch, length] (int64) of a text or a list of texts of the same token length.

        The tokenizer adds no special tokens; ``prepend_bos`` puts the model's BOS first. Texts
        whose token counts differ are refused with the counts (icgt does not pad: a pad would
        enter the class means and the attention).
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(entry, str) for entry in texts):
            raise TypeError(f"ActivationProbe.to_tokens: expected a string or a non-empty list of strings, got {text!r}")
        encoded = [self.tokenizer.encode(entry, add_special_tokens=False).ids for entry in texts]
        lengths = sorted({len(ids) for ids in encoded})
        if len(lengths) > 1:
            counts = ", ".join(f"text {i}: {len(ids)}" for i, ids in enumerate(encoded))
            raise ValueError(f"ActivationProbe.to_tokens: the texts have different token counts ({counts}); "
                             "run them separately or make them the same length")
        if prepend_bos:
            encoded = [[self.bos_token_id, *ids] for ids in encoded]
        if not encoded[0]:
            raise ValueError("ActivationProbe.to_tokens: the text has no tokens and no BOS was asked for")
        return torch.tensor(encoded, dtype=torch.int64)

    def to_str_tokens(self, tokens: Tokens, prepend_bos: bool = True) -> list[str] | list[list[str]]:
        """Each token as text: a list for one sequence (text or 1-D ids), a list of lists for a batch."""
        ids = self._token_ids(tokens, prepend_bos)
        rows = [[self.token_str(int(token)) for token in row] for row in ids]
        single = isinstance(tokens, str) or (torch.as_tensor(tokens).dim() == 1 if not _is_texts(tokens) else False)
        return rows[0] if single else rows

    def token_str(self, token_id: int) -> str:
        """The text a token contributes, as str (bytes that are not whole UTF-8 become U+FFFD).

        token_text gives the same as bytes.
        """
        return self.token_text(token_id).decode("utf-8", errors="replace")

    def run(self, tokens: Tokens, *args: Any, **kwargs: Any) -> _icgt.ProbeResult:
        """Runs text, a list of texts, 1-D or 2-D token ids; the rest as icgt._icgt.ActivationProbe.run.

        Text is tokenised with to_tokens (BOS first); 1-D ids are one sequence.
        """
        return super().run(self._token_ids(tokens, prepend_bos=True), *args, **kwargs)

    @contextmanager
    def hooks(self, hooks: Mapping[Any, Callable[[int, torch.Tensor], torch.Tensor | None]]) -> Iterator[None]:
        """Registers {point: fn} for the block and removes them when it ends, also on an exception.

        >>> probe = icgt.ActivationProbe(toy_bundle)
        >>> with probe.hooks({"blocks.0.hook_resid_post": lambda layer, residual: residual * 0}):
        ...     zeroed = probe.run(" w1 w2", layers=[0]).residuals
        >>> bool(zeroed.eq(0).all()), bool(probe.run(" w1 w2", layers=[0]).residuals.eq(0).all())
        (True, False)
        """
        handles = []
        try:
            for site, fn in hooks.items():
                handles.append(self.add_hook(site, fn))
            yield
        finally:
            for handle in handles:
                try:
                    self.remove_hook(handle)
                except ValueError:  # the hook removed itself, or clear_hooks ran
                    pass

    def _token_ids(self, tokens: Tokens, prepend_bos: bool) -> torch.Tensor:
        if _is_texts(tokens):
            return self.to_tokens(tokens, prepend_bos)
        ids = torch.as_tensor(tokens)
        return ids.unsqueeze(0) if ids.dim() == 1 else ids

    def __repr__(self) -> str:
        return super().__repr__().replace("ActivationProbe(", f"ActivationProbe('{self.bundle.name}', ", 1)


def _is_texts(tokens: Any) -> bool:
    return isinstance(tokens, str) or (isinstance(tokens, (list, tuple)) and bool(tokens)
                                       and all(isinstance(entry, str) for entry in tokens))
