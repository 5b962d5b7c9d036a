"""The architecture modules against the registry, transformers and llama.cpp's converter (gguf-py).

Each supported architecture is checked through what transformers builds for its model_type: the
hyper-parameters icgt reads from a transformers config are that config's, the block options are
what transformers' modules do, and the tensor names of its checkpoints and GGUF files (as gguf-py's
converter map names them) land on the same icgt parameters. A GGUF file of each architecture whose
GGUF files icgt reads, written as llama.cpp's converter writes it, reads as the model's transformers
config and runs as transformers runs the model; and an architecture added as one module (Qwen3) is
read by both readers.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import gguf
import pytest
import torch
from helpers import max_relative_error, randomise, reference_outputs
from test_gguf import write_gguf

import icgt.models.architectures as architectures_package
from icgt.models.architectures import (ARCHITECTURES, checkpoint_architecture, find_architecture,
                                       gguf_architecture)
from icgt.models.export import load_model
from icgt.models.gguf_checkpoint import GGUFFile
from icgt.models.hf_checkpoint import config_from_transformers
from icgt.models.scriptable import CausalLM, ModelConfig

NAMES = ["gemma2", "gemma3", "llama", "qwen2"]
GGUF_NAMES = ["gemma3", "llama", "qwen2"]
LAYERS = 4


def test_the_registry_holds_every_architecture_module_under_its_name():
    modules = [info.name for info in pkgutil.iter_modules(architectures_package.__path__) if info.name != "base"]
    assert sorted(modules) == NAMES == list(ARCHITECTURES)
    for name in modules:
        module = importlib.import_module(f"icgt.models.architectures.{name}")
        assert find_architecture(name) is module.ARCHITECTURE and module.ARCHITECTURE.name == name
        for model_type in module.ARCHITECTURE.model_types:
            assert checkpoint_architecture(model_type) is module.ARCHITECTURE
    assert [name for name in NAMES if ARCHITECTURES[name].gguf_tensors is not None] == GGUF_NAMES
    assert [gguf_architecture(name).name for name in GGUF_NAMES] == GGUF_NAMES


@pytest.mark.parametrize("look_up, value, message", [
    (find_architecture, "mistral", "architecture 'mistral' is not supported; expected one of gemma2, gemma3, llama, "
                                   "qwen2"),
    (find_architecture, ["llama"], r"architecture \['llama'\] is not supported"),
    (ModelConfig.tiny, "mistral", "architecture 'mistral' is not supported; expected one of gemma2, gemma3"),
    (lambda name: ModelConfig(**{**ModelConfig.tiny("llama").to_dict(), "architecture": name}), "mistral",
     "ModelConfig: architecture 'mistral' is not supported; expected one of gemma2, gemma3"),
    (gguf_architecture, "gemma2", "GGUF architecture 'gemma2' is not supported; expected one of gemma3, llama, qwen2"),
    (gguf_architecture, "x" * 100, "GGUF architecture 'xxxxxxxx.*\\.\\.\\. is not supported"),
    (checkpoint_architecture, "gpt2", r"model_type 'gpt2' is not supported; expected one of gemma2 \(Gemma 2\), "
                                      r"gemma3 \(Gemma 3\), gemma3_text \(Gemma 3\), llama \(Llama\), qwen2 \(Qwen2\)"),
])
def test_an_unknown_architecture_is_refused_naming_the_supported_ones(look_up, value, message):
    with pytest.raises(ValueError, match=message):
        look_up(value)


def transformers_config(name: str, **overrides):
    """A tiny transformers config of architecture ``name``'s (first) model_type, transformers' defaults elsewhere."""
    from transformers import AutoConfig

    return AutoConfig.for_model(find_architecture(name).model_types[0], **{
        "vocab_size": 96, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "bos_token_id": 1, "eos_token_id": 2,
        "pad_token_id": 0, **overrides})


def transformers_model(config):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_read_from_a_transformers_config_are_what_transformers_builds(name):
    hf_config = transformers_config(name)
    config = config_from_transformers(hf_config, name, "test")
    layers = transformers_model(hf_config).model.layers
    attention = layers[0].self_attn
    assert (config.num_layers, config.hidden_size, config.intermediate_size, config.vocab_size) == \
        (len(layers), hf_config.hidden_size, layers[0].mlp.up_proj.out_features, hf_config.vocab_size)
    assert (config.num_heads, config.num_kv_heads, config.head_dim) == \
        (hf_config.num_attention_heads, hf_config.num_key_value_heads, attention.head_dim)
    assert config.attention_scale == attention.scaling
    windows = [getattr(layer.self_attn, "sliding_window", None) for layer in layers]
    assert [config.sliding_window if kind == "sliding" else None for kind in config.layer_types] == windows
    # GGUF files do not record the activation: the architecture's must be transformers' default.
    assert config.hidden_activation == find_architecture(name).activation
    assert config.final_logit_softcapping == getattr(hf_config, "final_logit_softcapping", None)


@pytest.mark.parametrize("name", NAMES)
def test_block_options_are_what_transformers_modules_do(name):
    architecture = find_architecture(name)
    hf_model = transformers_model(transformers_config(name))
    layer = hf_model.model.layers[0]
    assert architecture.post_norms == hasattr(layer, "post_feedforward_layernorm")
    assert architecture.qk_norm == hasattr(layer.self_attn, "q_norm")
    assert architecture.qkv_bias == (layer.self_attn.q_proj.bias is not None)
    assert layer.self_attn.o_proj.bias is None and layer.mlp.down_proj.bias is None
    # transformers initialises a norm at its identity: 0 when it is applied as (1 + w).
    assert architecture.zero_centred_norms == bool((layer.input_layernorm.weight == 0).all())
    ids = torch.tensor([[3, 5, 7]])
    with torch.no_grad():
        embedded = hf_model(input_ids=ids, output_hidden_states=True).hidden_states[0]
    scale = hf_model.config.hidden_size ** 0.5 if architecture.scaled_embedding else 1.0
    torch.testing.assert_close(embedded, hf_model.model.embed_tokens.weight[ids] * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("option, field", [("attention_softcap", "attn_logit_softcapping"),
                                           ("final_softcap", "final_logit_softcapping")])
def test_an_architecture_may_soft_cap_exactly_where_transformers_does(name, option, field):
    reference = transformers_model(transformers_config(name, **{field: 1000.0}))
    capped = transformers_model(transformers_config(name, **{field: 0.5}))
    capped.load_state_dict(reference.state_dict())
    ids = torch.arange(3, 23).view(1, -1)
    with torch.no_grad():
        changed = not torch.equal(reference(ids).logits, capped(ids).logits)
    assert getattr(find_architecture(name), option) == changed
    if changed:
        assert getattr(ModelConfig.tiny(name, **{field: 0.5}), field) == 0.5
    else:
        with pytest.raises(ValueError, match=f"{field} must be None"):
            ModelConfig.tiny(name, **{field: 0.5})


def checkpoint_names(name: str) -> dict[str, str]:
    """icgt's name of each layer tensor of a tiny transformers model of ``name``, through the architecture's map."""
    hf_model = transformers_model(transformers_config(name))
    names = {}
    for key in hf_model.state_dict():
        if key.startswith("model.layers."):
            layer, tensor = key.removeprefix("model.layers.").split(".", 1)
            part, kind = tensor.rsplit(".", 1)
            names[key] = f"blocks.{layer}.{find_architecture(name).checkpoint_tensors[part]}.{kind}"
    return names


@pytest.mark.parametrize("name", NAMES)
def test_the_checkpoint_map_names_every_block_parameter_once(name):
    model = CausalLM(config_from_transformers(transformers_config(name), name, "test"))
    fused = {target for target, _, _ in model.parameter_slices().values()}
    expected = {key for key, _ in model.named_parameters() if key.startswith("blocks.") and key not in fused}
    expected |= set(model.parameter_slices())
    names = checkpoint_names(name)
    assert sorted(names.values()) == sorted(expected)


@pytest.mark.parametrize("name", GGUF_NAMES)
def test_gguf_names_land_where_the_checkpoint_names_do(name):
    """gguf-py's map is the one llama.cpp's converter renames checkpoint tensors with."""
    architecture = find_architecture(name)
    arch = next(arch for arch, arch_name in gguf.MODEL_ARCH_NAMES.items() if arch_name == name)
    converter = gguf.get_tensor_name_map(arch, LAYERS)
    for key, icgt_name in checkpoint_names(name).items():
        stem, kind = key.rsplit(".", 1)
        block, layer, gguf_part = converter.get_name(stem).split(".")
        assert (block, f"blocks.{layer}.{architecture.gguf_tensors[gguf_part]}.{kind}") == ("blk", icgt_name)
    known = {gguf.TENSOR_NAMES[tensor].removeprefix("blk.{bid}.") for tensor in gguf.MODEL_TENSORS[arch]}
    assert set(architecture.gguf_tensors) <= known


#: A Gemma 3 as its checkpoints are: queries scaled by head_dim (llama.cpp's rule for all but the 27B),
#: with a window short enough to matter in a 20-token test.
GEMMA3_AS_RELEASED = {"query_pre_attn_scalar": 16, "sliding_window": 4}
SLIDING_EVERY_SECOND = ["sliding_attention", "full_attention"] * 3


@pytest.mark.parametrize("name, overrides, metadata", [
    ("llama", {}, {}),
    ("qwen2", {}, {}),
    # No sliding pattern and no local rotary base in the file: llama.cpp's defaults, which are transformers'.
    ("gemma3", GEMMA3_AS_RELEASED, {}),
    ("gemma3", {**GEMMA3_AS_RELEASED, "layer_types": SLIDING_EVERY_SECOND},
     {"attention.sliding_window_pattern": [kind == "sliding_attention" for kind in SLIDING_EVERY_SECOND]}),
    ("gemma3", {**GEMMA3_AS_RELEASED, "rope_parameters": {
        "full_attention": {"rope_type": "default", "rope_theta": 500000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}}}, {"rope.freq_base_swa": 20000.0}),
    # Gemma 3 27B: 62 layers, queries scaled by hidden/heads (168 = 5376/32 there), not by head_dim.
    ("gemma3", {"num_hidden_layers": 62, "head_dim": 32, "query_pre_attn_scalar": 16, "sliding_window": 4}, {}),
], ids=["llama", "qwen2", "gemma3-defaults", "gemma3-pattern-list", "gemma3-local-base", "gemma3-27b-scale"])
def test_hyperparameters_read_from_a_gguf_file_are_its_transformers_configs(tmp_path, name, overrides, metadata):
    hf_config = transformers_config(name, **{"num_hidden_layers": 6, **overrides})
    path = write_gguf(tmp_path / f"{name}.gguf", transformers_model(hf_config), metadata=metadata)
    read = GGUFFile(path).config.to_dict()
    expected = config_from_transformers(hf_config, name, "test").to_dict()
    assert read.pop("rms_norm_eps") == pytest.approx(expected.pop("rms_norm_eps"))  # a float32 in the file
    assert read == expected


def assert_runs_as_transformers(source, hf_model):
    model = load_model(source)
    input_ids = torch.arange(3, 23).view(1, -1)
    hf_states, hf_raw_last, hf_logits = reference_outputs(hf_model, input_ids)
    with torch.no_grad():
        states = model.hidden_states(input_ids)
        logits = model(input_ids)
    # transformers' last hidden state has the final norm applied; icgt's is the raw block output.
    for layer, (state, hf_state) in enumerate(zip(states, [*hf_states[:-1], hf_raw_last], strict=True)):
        assert max_relative_error(state, hf_state) < 1e-5, f"hidden state {layer}"
    assert max_relative_error(logits, hf_logits) < 1e-5


@pytest.mark.parametrize("name", GGUF_NAMES)
def test_a_gguf_file_of_each_architecture_runs_as_transformers_runs_its_model(tmp_path, name):
    """Through the architecture's tensor names and weight_from_gguf (Llama's rows, Gemma's norms plus 1)."""
    overrides = GEMMA3_AS_RELEASED if name == "gemma3" else {}
    hf_model = randomise(transformers_model(transformers_config(name, **overrides)), seed=5)
    assert_runs_as_transformers(write_gguf(tmp_path / f"{name}.gguf", hf_model), hf_model)


@pytest.mark.parametrize("change, message", [
    (dict(metadata={"attention.sliding_window_pattern": "six"}),
     "gemma3.attention.sliding_window_pattern must be an integer >= 1, got 'six'"),
    (dict(metadata={"attention.sliding_window_pattern": 0}),
     "gemma3.attention.sliding_window_pattern must be an integer >= 1, got 0"),
    (dict(skip_keys=("attention.sliding_window",)), "lacks the required key 'gemma3.attention.sliding_window'"),
    (dict(metadata={"rope.freq_base_swa": -1.0}), "gemma3.rope.freq_base_swa must be a positive finite number"),
    (dict(metadata={"final_logit_softcapping": "none"}),
     "gemma3.final_logit_softcapping must be a positive finite number, got 'none'"),
])
def test_bad_gemma3_gguf_metadata_is_refused_naming_the_key(tmp_path, change, message):
    hf_model = transformers_model(transformers_config("gemma3", **GEMMA3_AS_RELEASED))
    with pytest.raises(ValueError, match=message):
        GGUFFile(write_gguf(tmp_path / "bad.gguf", hf_model, **change))


@pytest.mark.parametrize("name", NAMES)
def test_the_tiny_configuration_builds_a_model(name):
    config = ModelConfig.tiny(name)
    model = CausalLM(config).initialise_randomly(seed=0)
    assert config.attention_bias == find_architecture(name).qkv_bias
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, config.vocab_size)


#: An architecture the package does not have, as its one new file would define it: Qwen3 is Llama with an
#: RMSNorm (applied as w) on queries and keys; llama.cpp's converter leaves its rows unpermuted.
QWEN3_MODULE = '''
from .llama import Llama


class Qwen3(Llama):
    name = "qwen3"
    title = "Qwen3"
    model_types = ("qwen3",)
    qk_norm = True
    gguf_rows_permuted = False
    gguf_tensors = {**Llama.gguf_tensors, "attn_q_norm": "attn.q_norm", "attn_k_norm": "attn.k_norm"}
    checkpoint_tensors = {**Llama.checkpoint_tensors, "self_attn.q_norm": "attn.q_norm",
                          "self_attn.k_norm": "attn.k_norm"}


ARCHITECTURE = Qwen3()
'''


@pytest.fixture
def add_modules(tmp_path, monkeypatch):
    """Adds architecture modules (name: source) to the package's folders and registers the package again,
    as importing it would with those files among its own; undone after the test."""
    folder = tmp_path / "more_architectures"
    folder.mkdir()
    added = []

    def add(**sources):
        for module, source in sources.items():
            (folder / f"{module}.py").write_text(source)
            added.append(f"{architectures_package.__name__}.{module}")
        monkeypatch.setattr(architectures_package, "__path__", [*architectures_package.__path__, str(folder)])
        monkeypatch.setattr(architectures_package, "ARCHITECTURES", architectures_package._registered())

    yield add
    for module in added:
        sys.modules.pop(module, None)


def test_adding_an_architecture_is_adding_its_module(tmp_path, add_modules):
    add_modules(qwen3=QWEN3_MODULE)
    qwen3 = find_architecture("qwen3")
    assert checkpoint_architecture("qwen3") is qwen3 and gguf_architecture("qwen3") is qwen3
    assert ModelConfig.tiny("qwen3").architecture == "qwen3"
    hf_model = randomise(transformers_model(transformers_config("qwen3")), seed=3)
    hf_model.save_pretrained(tmp_path / "checkpoint")
    assert_runs_as_transformers(tmp_path / "checkpoint", hf_model)
    assert_runs_as_transformers(write_gguf(tmp_path / "qwen3.gguf", hf_model), hf_model)


def test_an_architecture_defined_twice_is_refused_naming_both_modules(add_modules):
    llama_again = "from .llama import Llama\n\nARCHITECTURE = Llama()\n"
    with pytest.raises(ValueError, match="architecture 'llama' is defined twice: in icgt.models.architectures.llama "
                                         "and icgt.models.architectures.llama_again"):
        add_modules(llama_again=llama_again)
