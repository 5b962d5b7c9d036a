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

import fnmatch
import inspect
import operator
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from . import _icgt
from .models.bundles import bundle_for, read_bundle_config, read_bundle_file, resolve
from .models.catalog import BUILTIN_MODELS

#: What run, to_tokens and to_str_tokens accept as input.
Tokens = str | Sequence[str] | torch.Tensor | Sequence[int] | Sequence[Sequence[int]]


class ActivationProbe(_icgt.ActivationProbe):
    """icgt's C++ ActivationProbe with the bundle's tokenizer (see the module docstring)."""

    def __init__(self, bundle: str | os.PathLike, device: str = "auto") -> None:
        super().__init__(bundle, device)
        self.bundle = Path(bundle)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike, dtype: str = "auto", device: str = "auto", *,
                        cache: str | os.PathLike | None = None, progress: bool = True) -> ActivationProbe:
        """A ready probe of ``model``: a built-in name ("gemma3-270m"), a .gguf, a checkpoint folder or a bundle.

        As TransformerLens's ``HookedTransformer.from_pretrained``: the model is exported to a bundle
        on first use (icgt.bundle_for; later calls find it in the cache) in ``dtype``, which "auto"
        chooses as experiments do (model_dtype: a bundle's own dtype, else
        bfloat16 where ``device`` computes it natively, float32 elsewhere).

        >>> probe = icgt.ActivationProbe.from_pretrained(toy_bundle, device="cpu")
        >>> probe.bundle.name, probe.dtype
        ('toy.pt', torch.float32)
        """
        chosen, _ = model_dtype(model, dtype, device, stacklevel=3)
        return cls(bundle_for(model, chosen, cache=cache, progress=progress), device)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer (a ``tokenizers.Tokenizer``), read from the bundle on first use."""
        return Tokenizer.from_str(read_bundle_file(self.bundle, "tokenizer.json").decode("utf-8"))

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool = True) -> torch.Tensor:
        """Token ids [batch, length] (int64) of a text or a list of texts of the same token length.

        The tokenizer adds no special tokens; ``prepend_bos`` puts the model's BOS first. Texts
        whose token counts differ are refused, with the texts grouped by count: icgt does not pad,
        since its models take no attention mask and a pad would enter what a run reduces over
        positions (class means, mean ablations, attention scores, the "last" logits). Each group
        is one batch.
        """
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(entry, str) for entry in texts):
            raise TypeError(f"ActivationProbe.to_tokens: expected a string or a non-empty list of strings, got {text!r}")
        encoded = [self.tokenizer.encode(entry, add_special_tokens=False).ids for entry in texts]
        by_count: dict[int, list[int]] = {}
        for index, ids in enumerate(encoded):
            by_count.setdefault(len(ids), []).append(index)
        if len(by_count) > 1:
            groups = "; ".join(f"{count} token{'s' * (count != 1)}: text{'s' * (len(indices) > 1)} "
                               f"{', '.join(map(str, indices))}" for count, indices in sorted(by_count.items()))
            example = sorted(by_count.items())[0][1]  # the shortest texts
            raise ValueError(f"ActivationProbe.to_tokens: the texts have different token counts ({groups}); icgt "
                             "does not pad (its models take no attention mask): run each group of one count as its "
                             f"own batch, e.g. probe.run([texts[i] for i in {example}])")
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

    @property
    def hook_point_names(self) -> list[str]:
        """Every hook point's TransformerLens name, in the order a run meets them.

        What ``capture="all"`` captures, and what glob patterns in ``capture`` are matched against.

        >>> names = icgt.ActivationProbe(toy_bundle).hook_point_names
        >>> names[:3], len(names)
        (['hook_embed', 'blocks.0.hook_resid_pre', 'blocks.0.attn.hook_pattern'], 22)
        """
        return ["hook_embed"] + [f"blocks.{layer}.{point}" for layer in range(self.num_layers)
                                 for point in _POINTS_OF_A_BLOCK]

    def run(
        self,
        tokens: Tokens,
        layers: Sequence[int] = (),
        capture: str | Sequence[_icgt.HookPoint] = (),
        hooks: Mapping[_icgt.HookPoint, _icgt.Hook] | Sequence[tuple[_icgt.HookPoint, _icgt.Hook]] | None = None,
        target_ids: Any = None,
        normalization: str = "full_vocabulary",
        logits: str | Sequence[int] | None = None,
        top_k: int = 0,
        log_probs: bool = False,
        attention_scores: Sequence[_icgt.AttentionScore] = (),
        ablations: Sequence[_icgt.HeadAblation] = (),
        patch_source: Any = None,
        start_residual: Any = None,
        start_layer: int = 0,
        max_batch: int = 0,
        progress: Callable[[int], None] | None = None,
        grad: bool = False,
    ) -> _icgt.ProbeResult:
        """Runs text, a list of texts, 1-D or 2-D token ids; the arguments as icgt._icgt.ActivationProbe.run.

        Text is tokenised with to_tokens (BOS first); 1-D ids are one sequence. Beyond the compiled
        run, ``capture`` takes ``"all"`` (every point of hook_point_names), glob patterns such as
        ``"blocks.*.attn.hook_pattern"`` (fnmatch, against hook_point_names) and a single name or
        pattern as well as a list; ``logits`` takes ``"all"`` (every position, as TransformerLens
        returns) besides ``"last"`` and a list of positions. ``grad=True`` runs with autograd (see
        run's example in docs/usage.md: gradients from the logits back to a hooked residual).

        >>> probe = icgt.ActivationProbe(toy_bundle)
        >>> result = probe.run(" w1 w2 w3", capture="blocks.*.attn.hook_z", logits="all")
        >>> sorted(result.activations), result.logits.shape
        (['blocks.0.attn.hook_z', 'blocks.1.attn.hook_z', 'blocks.2.attn.hook_z'], torch.Size([1, 4, 50]))
        """
        token_ids = self._token_ids(tokens, prepend_bos=True)
        return super().run(
            token_ids, layers=layers, capture=self._captured_points(capture), hooks=hooks, target_ids=target_ids,
            normalization=normalization, logits=_logit_positions(logits, token_ids.shape[-1]), top_k=top_k,
            log_probs=log_probs, attention_scores=attention_scores, ablations=ablations, patch_source=patch_source,
            start_residual=start_residual, start_layer=start_layer, max_batch=max_batch, progress=progress, grad=grad)

    def run_with_hooks(self, tokens: Tokens, fwd_hooks: Sequence[tuple[str | Callable[[str], bool], Callable]] = (),
                       **run_arguments: Any) -> _icgt.ProbeResult:
        """Runs with TransformerLens's hooks, as ``HookedTransformer.run_with_hooks(tokens, fwd_hooks=...)``.

        fwd_hooks: (name, fn) pairs; name is a hook point's full name ("blocks.3.attn.hook_z") or,
        as in TransformerLens, a function of a name that is true at the points to hook. fn is
        TransformerLens's form, called as ``fn(activation, hook=point)``: ``point.name`` is the
        point's name and ``point.layer()`` its block (TransformerLensHookPoint); it returns None
        (read, or edited in place) or a tensor that replaces the activation. The hooks are this
        run's only. The other keyword arguments and the result are run's: pass ``logits="all"``
        for what TransformerLens returns.

        >>> probe = icgt.ActivationProbe(toy_bundle)
        >>> def zero_head_0(z, hook):
        ...     print(hook.name, hook.layer())
        ...     z[:, :, 0] = 0
        >>> result = probe.run_with_hooks(" w1 w2", fwd_hooks=[("blocks.1.attn.hook_z", zero_head_0)],
        ...                               capture=[("z", 1)])
        blocks.1.attn.hook_z 1
        >>> bool(result.activations["z", 1][:, :, 0].eq(0).all())
        True
        """
        hooks = []
        for entry in fwd_hooks:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise TypeError(f"ActivationProbe.run_with_hooks: fwd_hooks holds {entry!r}; expected (name, fn) pairs, "
                                "name a hook point's name or a function of a name")
            name_or_filter, fn = entry
            for name in self._hooked_names(name_or_filter):
                hooks.append((name, _icgt_form(fn, TransformerLensHookPoint(name))))
        return self.run(tokens, hooks=hooks, **run_arguments)

    def _hooked_names(self, name_or_filter: str | Callable[[str], bool]) -> list[str]:
        """The hook points that a fwd_hooks entry's name or filter names."""
        names = self.hook_point_names
        if isinstance(name_or_filter, str):
            if name_or_filter not in names:
                raise ValueError(f"ActivationProbe.run_with_hooks: {name_or_filter!r} is not a hook point name; the "
                                 f"names are like {', '.join(map(repr, names[:4]))} (see hook_point_names)")
            return [name_or_filter]
        if not callable(name_or_filter):
            raise TypeError(f"ActivationProbe.run_with_hooks: a hook's name is {name_or_filter!r}; expected a hook "
                            "point's name or a function of a name that is true at the points to hook")
        matched = [name for name in names if name_or_filter(name)]
        if not matched:
            raise ValueError(f"ActivationProbe.run_with_hooks: the filter {name_or_filter!r} is true at no hook point "
                             "(see hook_point_names)")
        return matched

    def _captured_points(self, capture: str | Sequence[_icgt.HookPoint]) -> list[_icgt.HookPoint]:
        """capture with "all" and glob patterns expanded to hook point names (the compiled run takes a list)."""
        if isinstance(capture, str):
            capture = [capture]
        points: list[_icgt.HookPoint] = []
        for entry in capture:
            if not (isinstance(entry, str) and (entry == "all" or _is_glob(entry))):
                points.append(entry)  # a name, pair or layer: the compiled run checks it
                continue
            matched = self.hook_point_names if entry == "all" else fnmatch.filter(self.hook_point_names, entry)
            if not matched:
                examples = ", ".join(repr(name) for name in self.hook_point_names[:4])
                raise ValueError(f"ActivationProbe.run: capture pattern {entry!r} matches no hook point; "
                                 f"the names are like {examples} (see hook_point_names)")
            # A point already named or matched is captured once, so patterns may overlap; a name written
            # twice (or a name and its pair) is still the compiled run's "captured twice" error.
            points.extend(name for name in matched if name not in points)
        return points

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


@dataclass(frozen=True)
class TransformerLensHookPoint:
    """What a TransformerLens-form hook ``fn(activation, hook)`` gets as ``hook`` (run_with_hooks).

    As TransformerLens's HookPoint: ``name`` is the point's full name, ``layer()`` its block.

    >>> hook = TransformerLensHookPoint("blocks.3.attn.hook_z")
    >>> hook.name, hook.layer()
    ('blocks.3.attn.hook_z', 3)
    """

    name: str

    def layer(self) -> int:
        """The block the point is in: n of "blocks.n. ..." (hook_embed is in none: a ValueError)."""
        if not self.name.startswith("blocks."):
            raise ValueError(f"TransformerLensHookPoint.layer: {self.name} is in no block")
        return int(self.name.split(".")[1])


def _icgt_form(fn: Any, point: TransformerLensHookPoint) -> Callable[[int, torch.Tensor], torch.Tensor | None]:
    """A TransformerLens-form hook as icgt's fn(layer, tensor), after checking that TransformerLens could call it."""
    function = f"ActivationProbe.run_with_hooks: the hook for {point.name}"
    if not callable(fn):
        raise TypeError(f"{function} is a {type(fn).__name__}; expected a callable fn(activation, hook)")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins): the call itself will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(None, hook=point)
        except TypeError:
            raise TypeError(f"{function}, {getattr(fn, '__qualname__', repr(fn))}{signature}, cannot be called as "
                            "TransformerLens calls a hook, fn(activation, hook=hook_point); icgt's own form "
                            "fn(layer, tensor) goes in run's hooks= or add_hook") from None
    return lambda layer, activation: fn(activation, hook=point)


#: TransformerLens's names of the hook points inside a block, in the order a run meets them.
_POINTS_OF_A_BLOCK = ("hook_resid_pre", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
                      "hook_mlp_out", "hook_resid_post")

_LOGITS_FORMS = "'last', 'all' or a list of positions (negative from the end)"


def _is_glob(name: str) -> bool:
    return any(character in name for character in "*?[")


def _logit_positions(logits: Any, length: int) -> str | list[int] | None:
    """logits as the compiled run takes it: None, "last" or a list of positions ("all" is every one)."""
    if logits is None:
        return None
    if isinstance(logits, str):
        if logits == "last":
            return logits
        if logits == "all":
            return list(range(length))
        raise ValueError(f"ActivationProbe.run: logits={logits!r}; expected {_LOGITS_FORMS}")
    try:
        positions = list(logits)
        if any(isinstance(position, bool) for position in positions):
            raise TypeError("a bool is not a position")
        return [operator.index(position) for position in positions]
    except TypeError:
        raise ValueError(f"ActivationProbe.run: logits={logits!r}; expected {_LOGITS_FORMS}") from None


def _is_texts(tokens: Any) -> bool:
    return isinstance(tokens, str) or (isinstance(tokens, (list, tuple)) and bool(tokens)
                                       and all(isinstance(entry, str) for entry in tokens))


class SlowBfloat16Warning(UserWarning):
    """bfloat16 was asked for on a CPU that does not compute it natively: it is obeyed, and slow."""


def model_dtype(model: str | os.PathLike, dtype: str = "auto", device: str = "auto", *,
                stacklevel: int = 2) -> tuple[str, str]:
    """(dtype, why) that ``model`` (built-in name, .gguf, checkpoint folder or bundle) runs in on ``device``.

    "auto" is the bundle's own dtype when the model is a bundle already, else bfloat16 where the
    device computes it natively and float32 elsewhere (ActivationProbe.automatic_dtype decides). An
    explicit dtype is always obeyed; bfloat16 on a device without native support warns
    (SlowBfloat16Warning) of the cost, naming the line ``stacklevel`` frames up (as warnings.warn's:
    2 is model_dtype's caller; chosen_dtype and ActivationProbe.from_pretrained, which both choose by
    this rule, pass 3 to name their own caller's line).

    >>> from icgt.probe import model_dtype
    >>> model_dtype(toy_bundle), model_dtype(toy_bundle, "float32")
    (('float32', 'auto: the bundle holds float32 weights'), ('float32', 'asked for'))
    """
    if dtype != "auto":
        if dtype == "bfloat16" and not ActivationProbe.native_bfloat16(device):
            warnings.warn(f"bfloat16 asked for on {device}, without native bfloat16 there: obeyed, but its matrix "
                          "products run far slower than float32 (the main job's forward pass 4 to 6x slower on a "
                          "2-core AVX2 CPU, docs/performance.md); dtype 'auto' or 'float32' is faster here",
                          SlowBfloat16Warning, stacklevel=stacklevel)
        return dtype, "asked for"
    source = None if str(model) in BUILTIN_MODELS else resolve(model)
    if source is not None and source.kind == "bundle":
        stored = read_bundle_config(source.path)["dtype"]
        return stored, f"auto: the bundle holds {stored} weights"
    choice = ActivationProbe.automatic_dtype(device)
    return choice.dtype, f"auto: {choice.reason}"
