"""Models: GGUF files and checkpoint folders read into icgt's own scriptable definitions
(``scriptable``, one module per architecture in ``architectures``), exported as bundles (``export``,
``bundles``); the built-in models (``catalog``) and their concept words (``words``, ``tokens``).

Importing this package loads nothing heavy: the catalog and the word lists serve the command line and
the report without torch.
"""
