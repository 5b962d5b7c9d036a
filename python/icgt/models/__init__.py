"""Models: GGUF files and checkpoint folders read into icgt's own scriptable definitions
(``scriptable``, one module per architecture in ``architectures``), exported as bundles (``export``,
``bundles``); the built-in models (``catalog``) and their concept words (``words``, ``tokens``).

Importing this package loads nothing heavy: the catalog and the word lists serve the command line and
the report without torch.
"""

from .._lazy import lazy_attributes

# The submodules on first use, and the scriptable definitions under the names icgt 0.2 gave them here.
__getattr__ = lazy_attributes(__name__, dict.fromkeys(["FORMAT_VERSION", "CausalLM", "ModelConfig",
                                                       "rope_inverse_frequencies"], "scriptable"))
