"""Qwen2 and Qwen2.5: Llama's layout with biases on the query, key and value projections.

llama.cpp runs Qwen2 with the half-split rotary layout transformers uses, so its converter leaves the
query and key rows as they are; the biases load as stored (blk.N.attn_q.bias ...).
"""

from __future__ import annotations

from .llama import Llama


class Qwen2(Llama):
    """Llama's blocks, plus q/k/v biases (always, and nothing else biased, whatever a config says).

    >>> ARCHITECTURE.qkv_bias, ARCHITECTURE.gguf_rows_permuted
    (True, False)
    """

    name = "qwen2"
    title = "Qwen2"
    model_types = ("qwen2",)
    qkv_bias = True
    gguf_rows_permuted = False


ARCHITECTURE = Qwen2()
