"""The icgt command line: ``icgt export`` and its errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import randomise, save_checkpoint, tiny_tokenizer

from icgt.models.bundles import read_bundle_config
from icgt.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(vocab_size=tiny_tokenizer().get_vocab_size(), hidden_size=32, intermediate_size=48,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                              sliding_window=4, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return save_checkpoint(randomise(Gemma3ForCausalLM(config), 0), tmp_path_factory.mktemp("gemma3"), tiny_tokenizer())


def test_export_writes_to_output_and_prints_the_path(checkpoint, tmp_path, capsys):
    output = tmp_path / "out" / "tiny.pt"
    assert main(["export", str(checkpoint), "--dtype", "bfloat16", "--output", str(output)]) == 0
    assert capsys.readouterr().out.strip() == str(output)
    config = read_bundle_config(output)
    assert (config["architecture"], config["dtype"]) == ("gemma3", "bfloat16")


def test_export_without_output_fills_the_cache(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(tmp_path))
    assert main(["export", str(checkpoint)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith(str(tmp_path / "bundles")) and printed.endswith(".pt")


@pytest.mark.parametrize("argv, message", [
    (["export", "no-such-model"], "icgt: error: unknown model 'no-such-model'"),
    (["export", "/no/such/file.gguf"], "icgt: error: model path not found: /no/such/file.gguf"),
])
def test_bad_models_print_one_error_line_and_fail(argv, message, capsys):
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1


def test_exporting_a_bundle_to_an_output_is_refused(checkpoint, tmp_path, capsys):
    bundle = tmp_path / "tiny.pt"
    main(["export", str(checkpoint), "--output", str(bundle)])
    capsys.readouterr()
    assert main(["export", str(bundle), "--output", str(tmp_path / "again.pt")]) == 1
    assert "is already a bundle" in capsys.readouterr().err


def test_a_bad_dtype_is_an_argparse_error(checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(checkpoint), "--dtype", "float16"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_python_dash_m_icgt_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "icgt", "export", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--dtype" in result.stdout and "ICGT_CACHE_DIR" in result.stdout


def test_the_help_names_the_real_presets_and_dtypes():
    from icgt.models import catalog, export
    from icgt.study import presets

    result = subprocess.run([sys.executable, "-m", "icgt", "run", "--help"], capture_output=True, text=True)
    text = " ".join(result.stdout.split()).replace("- ", "-")  # argparse may break a line after a name's hyphen
    assert all(name in text for name in presets.PRESETS), result.stdout
    assert sorted(catalog.DTYPE_NAMES) == sorted(export.DTYPES)


def test_the_presets_are_plain_data_that_load_neither_torch_nor_the_core():
    code = ("import sys, icgt.study.presets, icgt.cli; "
            "print(sorted(name for name in ('torch', 'icgt._icgt') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_an_unknown_preset_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--preset", "grid", "cube"])
    assert exit_info.value.code == 2
    assert ("argument --preset: invalid choice: 'cube' (choose from coverage-grid3, coverage-grid4, coverage-grid5, "
            "coverage-grid6, coverage-ring12, coverage-ring16, coverage-ring20, coverage-ring8, days, grid, "
            "grid-heads, grid-heldout, grid-intervention, grid-subspace, grid-toy-mixing, grid-two-graphs-p0, "
            "grid-two-graphs-p100, grid-two-graphs-p25, grid-two-graphs-p50, grid-two-graphs-p75, hexagon, pairs, "
            "ring)") in capsys.readouterr().err


def test_version_and_report_description(capsys):
    from icgt import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"icgt {__version__}\n"
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "opens with a verdict in words" in " ".join(capsys.readouterr().out.split())


def test_seeds_of_mechanism_runs_are_not_aggregated_as_graph_runs(tmp_path, capsys):
    # aggregate_runs reads accuracy and class means, which mechanism runs lack: icgt run --seeds 3 with a
    # mechanism preset used to fail after its runs with KeyError 'accuracy'. The folders are never read.
    from icgt import cli
    from icgt.study.config import preset

    configs = [preset("grid-heads", seed=seed) for seed in range(3)]
    cli._aggregate(configs, [tmp_path / f"heads-seed{seed}" for seed in range(3)])
    assert capsys.readouterr().out == "" and not list(tmp_path.iterdir())
