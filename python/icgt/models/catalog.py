"""The built-in models by name, what each one is, and the dtypes a bundle can hold.

No dependencies beyond the standard library: the command line builds its help from these names and
the report names models with them, neither of which should have to load torch.

>>> from icgt.models.catalog import describe_model
>>> describe_model("gemma3-270m", dtype="torch.float32")
'Gemma 3 270M, Q4_K_M GGUF, run in float32'
"""

from __future__ import annotations

from pathlib import PurePath

SMOLLM2 = "smollm2-135m"
GEMMA3 = "gemma3-270m"
QWEN25_CODER = "qwen2.5-coder-1.5b"
BUILTIN_MODELS = (SMOLLM2, GEMMA3, QWEN25_CODER)

#: What each built-in model is: the checkpoint (its variant) and the quantised file it is read from.
BUILTIN_DESCRIPTIONS = {
    SMOLLM2: "SmolLM2-135M-Instruct, Q4_1 GGUF",
    GEMMA3: "Gemma 3 270M, Q4_K_M GGUF",
    QWEN25_CODER: "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
}
#: Short names for sentences ("SmolLM2-135M does not follow the graph").
BUILTIN_SHORT_NAMES = {SMOLLM2: "SmolLM2-135M", GEMMA3: "Gemma 3 270M", QWEN25_CODER: "Qwen2.5-Coder-1.5B"}

#: Weight dtypes a bundle can be exported in (icgt.models.export.DTYPES maps them to torch dtypes).
DTYPE_NAMES = ("bfloat16", "float32")


def short_model_name(model: str, source: str | None = None) -> str:
    """A model's name for sentences: the built-in's short name, else its source's file or folder name.

    >>> short_model_name("smollm2-135m"), short_model_name("/models/Llama-3.1-8B/")
    ('SmolLM2-135M', 'Llama-3.1-8B')
    """
    if model in BUILTIN_SHORT_NAMES:
        return BUILTIN_SHORT_NAMES[model]
    return PurePath(source or model).name or str(model)


def describe_model(model: str, source: str | None = None, dtype: str | None = None) -> str:
    """A model as a reader should know it: variant and quantisation of a built-in model, else the
    name of its source file or folder; then the dtype the bundle ran in, when known.

    ``model`` is what the run was given (a built-in name or a path), ``source`` the file or folder the
    bundle was exported from, ``dtype`` as run.json records it ("torch.bfloat16" or "bfloat16").

    >>> describe_model("smollm2-135m")
    'SmolLM2-135M-Instruct, Q4_1 GGUF'
    >>> describe_model("runs/llama.pt", source="/models/Llama-3.2-1B-Q8_0.gguf", dtype="torch.bfloat16")
    'Llama-3.2-1B-Q8_0.gguf, run in bfloat16'
    """
    name = BUILTIN_DESCRIPTIONS.get(model) or PurePath(source or model).name or str(model)
    if dtype:
        name += f", run in {str(dtype).removeprefix('torch.')}"
    return name
