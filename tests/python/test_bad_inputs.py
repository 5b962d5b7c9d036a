"""The bad-input catalogue: unusual and wrong inputs across graphs, walks, bundles, GGUF files,
token ids, hooks, statistics, configs and the command line.

Each case runs in a process of its own (tests/python/isolated.py), so that a crash fails the case
instead of the suite. A refusal must be the documented exception type with a message that names
the argument and what was expected; an input that must work (int32 ids, non-contiguous or float16
tensors) must give the same result as the plain case. docs/reliability.md lists the categories.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import textwrap
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
from isolated import IsolatedRunner
from synthetic_run import write_synthetic_run
from test_gguf import tiny_llama, write_gguf
from toy_bundle import extra_files, toy_model, write_toy_bundles


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    error: str | None  # the exception's class name; None: the code must finish with result == True
    message: str = ""  # a regular expression the message must match


GRAPHS = [
    Case("square_grid beyond int", "icgt.Graph.square_grid(65536, 65536)", "ValueError",
         r"Graph.square_grid: 4294967296 nodes; icgt graphs hold at most 2147483647"),
    Case("square_grid of zero rows", "icgt.Graph.square_grid(0, 4)", "ValueError",
         r"Graph.square_grid: rows must be an integer from 1 to"),
    Case("square_grid of a float", "icgt.Graph.square_grid(4.5, 4)", "TypeError",
         r"Graph.square_grid: rows must be an integer, got 4.5 \(float\)"),
    Case("square_grid of a bool", "icgt.Graph.square_grid(True, 4)", "TypeError", r"rows must be an integer, got True"),
    Case("ring of two", "icgt.Graph.ring(2)", "ValueError", r"Graph.ring: n must be an integer from 3"),
    Case("ring too large for memory", "icgt.Graph.ring(2**31 - 1)", "ValueError",
         r"Graph.ring: a graph of 2147483647 nodes .* would need about [0-9.]+ GiB of memory"),
    Case("from_edges beyond int", "icgt.Graph.from_edges(2**31, [])", "ValueError",
         r"Graph.from_edges: num_nodes must be an integer from 1 to 2147483647, got 2147483648"),
    Case("from_edges with a self-loop", "icgt.Graph.from_edges(3, [(0, 0)])", "ValueError", r"self-loop at node 0"),
    Case("from_edges with a repeated edge", "icgt.Graph.from_edges(3, [(0, 1), (1, 0)])", "ValueError",
         r"edge \(1, 0\) is given twice"),
    Case("from_edges naming a missing node", "icgt.Graph.from_edges(3, [(0, 5)])", "ValueError",
         r"edge \(0, 5\) names a node outside 0..2"),
    # Found by tests/fuzz/fuzz_edges.py: these reached pybind11's several-line overload listing.
    Case("from_edges with a float node", "icgt.Graph.from_edges(3, [(0, 1), (1, 1.5)])", "TypeError",
         r"Graph.from_edges: edge 1 is \(1, 1.5\); node ids must be integers, got 1.5 \(float\)"),
    Case("from_edges with a word for a node", "icgt.Graph.from_edges(3, [['x', 2]])", "TypeError",
         r"edge 0 is \['x', 2\]; node ids must be integers, got 'x' \(str\)"),
    Case("from_edges with a long non-ASCII word", "icgt.Graph.from_edges(3, [(0, 'é' * 80)])", "TypeError",
         r"node ids must be integers, got 'é{56}\.\.\. \(str\)"),
    Case("from_edges with a node beyond int", "icgt.Graph.from_edges(2, [(0, 2**31)])", "ValueError",
         r"Graph.from_edges: edge \(0, 2147483648\) names a node outside 0..1"),
    Case("from_edges with a triple", "icgt.Graph.from_edges(3, [(0, 1, 2)])", "TypeError",
         r"Graph.from_edges: edge 0 must be a pair \(i, j\) of node ids, got \(0, 1, 2\)"),
    Case("from_edges of a string", "icgt.Graph.from_edges(3, '01')", "TypeError",
         r"Graph.from_edges: edges must be a sequence of \(i, j\) pairs, got str"),
    Case("from_edges of a numpy edge array",
         "result = icgt.Graph.from_edges(3, np.array([[0, 1], [1, 2]])).edges == [(0, 1), (1, 2)]", None),
    Case("from_adjacency not symmetric", "icgt.Graph.from_adjacency([[0, 1], [0, 0]])", "ValueError",
         r"not symmetric at \(0, 1\)"),
    Case("too few labels", "icgt.Graph.ring(4).labels = ['a', 'b']", "ValueError", r"got 2 labels for 4 nodes"),
    Case("repeated labels", "icgt.Graph.ring(3).labels = ['a', 'a', 'b']", "ValueError", r"label 'a' is used twice"),
    Case("unknown label", "icgt.Graph.ring(3).node_of('zebra')", "ValueError", r"no node is labelled 'zebra'"),
    Case("a repeated label with a newline", "icgt.Graph.ring(3).labels = ['a\\nb', 'a\\nb', 'c']", "ValueError",
         r"label 'a\\nb' is used twice"),
    Case("spectral embedding of k 0", "icgt.Graph.ring(5).spectral_embedding(0)", "ValueError", r"k must be in 1..4"),
    Case("a disconnected graph is connected?",
         "result = icgt.Graph.from_edges(4, [(0, 1), (2, 3)]).is_connected() is False", None),
]

WALKS = [
    Case("negative seed", "icgt.WalkSampler(icgt.Graph.ring(5), seed=-1)", "ValueError",
         r"WalkSampler: seed must be an integer from 0 to 18446744073709551615, got -1"),
    Case("seed of 2**64", "icgt.WalkSampler(icgt.Graph.ring(5), seed=2**64)", "ValueError", r"seed must be an integer from 0"),
    Case("fractional seed", "icgt.WalkSampler(icgt.Graph.ring(5), seed=1.5)", "TypeError", r"seed must be an integer, got 1.5"),
    Case("no walks", "icgt.WalkSampler(icgt.Graph.ring(5)).random_walks(0, 10)", "ValueError",
         r"WalkSampler.random_walks: batch must be an integer from 1"),
    Case("walks too large for memory", "icgt.WalkSampler(icgt.Graph.ring(5)).random_walks(10**6, 10**6)",
         "ValueError", r"a 1000000 x 1000000 int64 walk array would need about [0-9.]+ GiB"),
    Case("unknown start", "icgt.WalkSampler(icgt.Graph.ring(5)).random_walks(2, 5, start='diagonal')", "ValueError",
         r"start must be 'uniform' or 'per_node', got 'diagonal'"),
    Case("no pairs", "icgt.WalkSampler(icgt.Graph.ring(5)).neighbour_pairs(1, 0)", "ValueError",
         r"num_pairs must be an integer from 1"),
    Case("an isolated node", "icgt.WalkSampler(icgt.Graph.from_edges(3, [(0, 1)]))", "ValueError",
         r"node 2 \('2'\) has no neighbour"),
    Case("numpy integers are integers", """
        a = icgt.WalkSampler(icgt.Graph.ring(5), seed=np.uint64(3)).random_walks(np.int64(2), np.int32(7))
        b = icgt.WalkSampler(icgt.Graph.ring(5), seed=3).random_walks(2, 7)
        result = bool((a == b).all())""", None),
]

BUNDLES = [
    Case("missing bundle", "icgt.ActivationProbe('/no/such/bundle.pt')", "FileNotFoundError",
         r"model bundle '/no/such/bundle.pt' does not exist"),
    Case("a folder as bundle", "icgt.ActivationProbe(os.environ['TOY'])", "ValueError", r"is a folder; expected a bundle file"),
    Case("a device file as bundle", "icgt.ActivationProbe('/dev/null')", "ValueError", r"is not a regular file"),
    Case("garbage bundle", "icgt.ActivationProbe(os.environ['TOY'] + '/garbage.pt')", "RuntimeError",
         r"could not be read as a TorchScript bundle"),
    Case("truncated bundle", "icgt.ActivationProbe(os.environ['TOY'] + '/truncated.pt')", "RuntimeError",
         r"could not be read as a TorchScript bundle"),
    Case("future format", "icgt.ActivationProbe(os.environ['TOY'] + '/version99.pt')", "RuntimeError",
         r"format version 99, but this build reads version 4; re-export"),
    Case("TorchScript that is not icgt's", "icgt.ActivationProbe(os.environ['TOY'] + '/not-icgt.pt')", "RuntimeError",
         r"not an icgt bundle: it has no attribute"),
    Case("16 bytes flipped in a weight", "icgt.ActivationProbe(os.environ['TOY'] + '/damaged.pt')", "RuntimeError",
         r"is damaged: tensor '[a-z_.0-9]+' does not match the checksum recorded at export"),
    Case("a weight's zip record of size 0 (LibTorch loads it without data)",
         "icgt.ActivationProbe(os.environ['TOY'] + '/empty-record.pt')", "RuntimeError",
         r"is damaged: tensor '[a-z_.0-9]+' of shape \[\d+, \d+\] has 0 bytes of data where it needs \d+"),
    Case("unknown device", "icgt.ActivationProbe(os.environ['TOY'] + '/toy.pt', device='tpu')", "ValueError",
         r"device 'tpu' is not understood"),
    Case("an unknown device for the dtype decision", "icgt.ActivationProbe.native_bfloat16('gpu')", "ValueError",
         r"ActivationProbe.native_bfloat16: device 'gpu' is not understood; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    Case("an ICGT_NATIVE_BFLOAT16 that is neither 0 nor 1", """
        os.environ["ICGT_NATIVE_BFLOAT16"] = "yes"
        icgt.ActivationProbe.automatic_dtype("cpu")""", "ValueError",
         r"ActivationProbe.automatic_dtype: ICGT_NATIVE_BFLOAT16 is 'yes'; expected 1 \(the device computes bfloat16 "
         r"natively\), 0 \(it does not\) or unset"),
    Case("bundle config of a non-bundle", "icgt.read_bundle_config(os.environ['TOY'] + '/garbage.pt')", "ValueError",
         r"is not an icgt bundle"),
    # Found by tests/fuzz/fuzz_bundle.py (the extra files of a valid bundle rewritten).
    Case("a vocabulary byte that is not UTF-8", "icgt.ActivationProbe(os.environ['TOY'] + '/vocabulary-ff.pt')",
         "RuntimeError", r"bundle vocabulary.hex line 2: '\\xff' is not a lowercase hex digit"),
    Case("a vocabulary with CRLF line ends", "icgt.ActivationProbe(os.environ['TOY'] + '/vocabulary-crlf.pt')",
         "RuntimeError", r"bundle vocabulary.hex line 1 ends with a carriage return: CRLF line ends"),
    Case("a probe's config.json that is not JSON", "icgt.ActivationProbe(os.environ['TOY'] + '/config-broken.pt').config",
         "ValueError", r"ActivationProbe.config: the bundle's config.json is not JSON \(Expecting"),
    Case("a probe's config.json that is not UTF-8", "icgt.ActivationProbe(os.environ['TOY'] + '/config-latin1.pt').config",
         "ValueError", r"ActivationProbe.config: the bundle's config.json is not JSON"),
    Case("a bundle's config.json that is not JSON", "icgt.read_bundle_config(os.environ['TOY'] + '/config-broken.pt')",
         "ValueError", r"is not an icgt bundle: its config.json is not JSON \(Expecting"),
    Case("a bundle's config.json that is not UTF-8", "icgt.read_bundle_config(os.environ['TOY'] + '/config-latin1.pt')",
         "ValueError", r"is not an icgt bundle: its config.json is not JSON \('utf-8' codec can't decode"),
    Case("a bundle's config.json that is a string",
         "icgt.read_bundle_config(os.environ['TOY'] + '/config-string.pt')", "ValueError",
         r"its config.json holds a str, not an object"),
    Case("a bundle archive of an unknown compression method",
         "icgt.read_bundle_config(os.environ['TOY'] + '/zip-method-77.pt')", "ValueError",
         r"is not an icgt bundle \(not a TorchScript archive: That compression method is not supported\)"),
    Case("a bundle archive with a member name that is not UTF-8",
         "icgt.read_bundle_config(os.environ['TOY'] + '/zip-name-ff.pt')", "ValueError",
         r"is not an icgt bundle \(not a TorchScript archive: 'utf-8' codec can't decode byte 0xff"),
    Case("a bundle that records no dtype", "icgt.bundle_for(os.environ['TOY'] + '/config-no-dtype.pt')", "ValueError",
         r"config-no-dtype.pt is a bundle of dtype None, but dtype 'float32' was asked for"),
    Case("a token text with a newline", "icgt.ActivationProbe(os.environ['TOY'] + '/toy.pt').token_id(' w1\\n')",
         "ValueError", r"no single token of this llama vocabulary is ' w1\\n'"),
]

GGUF = [
    Case("a text file as GGUF", "icgt.models.export.load_model(os.environ['GGUF'] + '/noise.gguf')", "ValueError",
         r"is not a readable GGUF file"),
    Case("truncated GGUF", "icgt.models.export.load_model(os.environ['GGUF'] + '/truncated.gguf')", "ValueError",
         r"is not a readable GGUF file"),
    Case("unsupported GGUF architecture", "icgt.models.export.load_model(os.environ['GGUF'] + '/mamba.gguf')", "ValueError",
         r"GGUF architecture 'mamba' is not supported"),
    Case("GGUF without a required key", "icgt.models.export.load_model(os.environ['GGUF'] + '/no-blocks.gguf')", "ValueError",
         r"lacks the required key 'llama.block_count'"),
    Case("a model path under an unknown user's home", "icgt.bundle_for('~no-such-user-icgt/model.gguf')",
         "FileNotFoundError", r"model path not found: ~no-such-user-icgt/model.gguf \(no user's home folder"),
    Case("unknown export dtype", "icgt.bundle_for(os.environ['GGUF'] + '/tiny.gguf', dtype='float16')", "ValueError",
         r"dtype 'float16' is not supported"),
    # Found by tests/fuzz/fuzz_gguf.py.
    Case("GGUF with zero attention heads", "icgt.models.export.load_model(os.environ['GGUF'] + '/zero-heads.gguf')",
         "ValueError", r"GGUF metadata llama.attention.head_count must be an integer >= 1, got 0"),
    Case("GGUF with a text for a size", "icgt.models.export.load_model(os.environ['GGUF'] + '/text-hidden.gguf')",
         "ValueError", r"GGUF metadata llama.embedding_length must be an integer >= 1, got 'sixty-four'"),
    Case("GGUF architecture that is not UTF-8", "icgt.models.export.load_model(os.environ['GGUF'] + '/latin1-arch.gguf')",
         "ValueError", r"GGUF metadata 'general.architecture' is not UTF-8 text"),
    Case("GGUF array running past the end of the file", "icgt.models.export.load_model(os.environ['GGUF'] + '/endless.gguf')",
         "ValueError", r"is not a readable GGUF file: truncated or damaged: a read of 1 value\(s\) at byte 63 runs "
                       r"past the end of the file \(63 bytes\)"),
    Case("GGUF block count of 2**31", "icgt.models.export.load_model(os.environ['GGUF'] + '/many-blocks.gguf')",
         "ValueError", r"GGUF metadata llama.block_count is 2147483648, but the file holds the tensors of 2 blocks"),
    Case("GGUF tensor of int64", "icgt.models.export.load_model(os.environ['GGUF'] + '/int64-tensor.gguf')", "ValueError",
         r"tensor 'blk.0.ffn_up.weight' \(I64, shape \(96, 64\)\) cannot be read as numbers"),
    Case("GGUF query projection of the wrong shape", "icgt.models.export.load_model(os.environ['GGUF'] + '/short-q.gguf')",
         "ValueError", r"tensor 'blk.0.attn_q.weight' has shape \(6, 64\), expected \(64, 64\) from the config"),
]

TOKEN_IDS = [
    Case("3-D token ids", "probe.run(torch.zeros(1, 2, 3, dtype=torch.long))", "TypeError",
         r"token_ids must be a 2-D integer tensor, got 3-D"),
    Case("float token ids", "probe.run(torch.zeros(1, 3))", "TypeError", r"token_ids must hold integer token ids"),
    Case("negative token id", "probe.run([[0, -1, 2]])", "ValueError", r"token_ids holds token id -1; the vocabulary is 0..49"),
    Case("token id past the vocabulary", "probe.run([[0, 50]])", "ValueError", r"holds token id 50"),
    Case("empty token ids", "probe.run(torch.zeros(1, 0, dtype=torch.long))", "ValueError", r"token_ids is empty"),
    Case("longer than the model's context", "probe.run(torch.zeros(1, 65, dtype=torch.long))", "ValueError",
         r"token_ids has 65 positions, more than the 64 this llama model was trained for"),
    Case("empty target ids", "probe.run([[0, 1]], target_ids=[])", "ValueError", r"target_ids is empty"),
    Case("target id past the vocabulary", "probe.run([[0, 1]], target_ids=[99])", "ValueError",
         r"target_ids holds token id 99"),
    Case("a layer twice", "probe.run([[0, 1]], layers=[1, 1])", "ValueError", r"layer 1 is requested twice"),
    Case("a layer the model lacks", "probe.run([[0, 1]], layers=[3])", "ValueError",
         r"layer 3 is out of range; expected -1 \(embeddings\) to 2"),
    Case("negative max_batch", "probe.run([[0, 1]], max_batch=-1)", "ValueError", r"max_batch must be 0"),
    Case("int32 ids give the int64 result", """
        ids = torch.tensor([[0, 5, 6, 7], [0, 1, 2, 3]])
        a = probe.run(ids, layers=[0, 2], target_ids=[5, 6]).residuals
        b = probe.run(ids.int(), layers=[0, 2], target_ids=[5, 6]).residuals
        result = torch.equal(a, b)""", None),
    Case("non-contiguous ids give the contiguous result", """
        ids = torch.tensor([[0, 1], [5, 2], [6, 3], [7, 4]]).t()
        assert not ids.is_contiguous()
        result = torch.equal(probe.run(ids, layers=[1]).residuals, probe.run(ids.contiguous(), layers=[1]).residuals)""",
         None),
]

HOOKS = [
    Case("a hook returning another shape", """
        probe.add_hook(0, lambda layer, residual: residual[:, :1])
        probe.run([[0, 1, 2]], layers=[0])""", "ValueError",
         r"ActivationProbe.run: hook 0 at blocks.0.hook_resid_post left a tensor that is not a Float tensor of shape \[1, 3, 16\]"),
    Case("a hook returning a number", """
        probe.add_hook(1, lambda layer, residual: 3)
        probe.run([[0, 1, 2]], layers=[1])""", "TypeError",
         r"ActivationProbe.run: the hook at blocks.1.hook_resid_post returned a int; expected None"),
    Case("an exception inside a hook reaches the caller", """
        def failing(layer, residual):
            raise KeyError("from the hook")
        probe.add_hook(1, failing)
        probe.run([[0, 1, 2]], layers=[1])""", "KeyError", r"from the hook"),
    Case("clear_hooks inside a hook, with a second hook on its layer", """
        seen = []
        probe.add_hook(1, lambda layer, residual: (seen.append("a"), probe.clear_hooks()) and None)
        probe.add_hook(1, lambda layer, residual: seen.append("b"))
        probe.run([[0, 1, 2]], layers=[1])
        probe.run([[0, 1, 2]], layers=[1])
        result = seen == ["a", "b"]""", None),
    Case("a hook removing itself, with a second hook on its layer", """
        seen, handles = [], {}
        def once(layer, residual):
            seen.append("once")
            probe.remove_hook(handles["once"])
        handles["once"] = probe.add_hook(0, once)
        probe.add_hook(0, lambda layer, residual: seen.append("always"))
        probe.run([[0, 1, 2]], layers=[0])
        probe.run([[0, 1, 2]], layers=[0])
        result = seen == ["once", "always", "always"]""", None),
    Case("a hook removing another hook of its layer", """
        seen, handles = [], {}
        def remove_b(layer, residual):
            seen.append("a")
            if "b" in handles:
                probe.remove_hook(handles.pop("b"))
        probe.add_hook(2, remove_b)
        handles["b"] = probe.add_hook(2, lambda layer, residual: seen.append("b"))
        probe.run([[0, 1, 2]], layers=[2])
        probe.run([[0, 1, 2]], layers=[2])
        result = seen == ["a", "b", "a"]""", None),
    Case("a hook adding hooks on its own layer", """
        seen = []
        probe.add_hook(2, lambda layer, residual: (seen.append("add"), probe.add_hook(2, lambda l, r: seen.append("new"))) and None)
        probe.add_hook(2, lambda layer, residual: seen.append("b"))
        probe.run([[0, 1, 2]], layers=[2])
        result = seen == ["add", "b"] and len(probe.run([[0, 1]], layers=[2]).residuals) == 1""", None),
    Case("removing an unknown hook", "probe.remove_hook(12345)", "ValueError", r"no hook has handle 12345"),
    Case("a hook on a layer the model lacks", "probe.add_hook(7, lambda layer, residual: None)", "ValueError",
         r"ActivationProbe.add_hook: layer 7 is out of range"),
    Case("a NaN head gate", "probe.set_head_gates(0, [1.0, float('nan'), 1.0, 1.0])", "ValueError",
         r"gate 1 \(head 1\) is nan; expected a finite factor >= 0"),
    Case("a negative head gate", "probe.set_head_gates(0, [1.0, 1.0, -2.0, 1.0])", "ValueError",
         r"gate 2 \(head 2\) is -2; expected a finite factor >= 0"),
    Case("an infinite head gate", "probe.set_head_gates(1, [float('inf'), 1.0, 1.0, 1.0])", "ValueError",
         r"gate 0 \(head 0\) is inf"),
    Case("gates of the wrong length", "probe.set_head_gates(0, [1.0, 0.0])", "ValueError",
         r"expected 4 gates \(one per head\), got shape \[2\]"),
    Case("gates on the embedding layer", "probe.set_head_gates(-1, [1.0] * 4)", "ValueError",
         r"the embedding layer has no attention heads"),
]

STATISTICS = [
    Case("class means of zero layers", """
        means = icgt.RepresentationStats(4).class_means(torch.randn(0, 2, 30, 8), torch.randint(0, 4, (2, 30)), 5, [10, 20])
        result = tuple(means.means.shape) == (0, 2, 4, 8)""", None),
    Case("class means per sequence of zero layers", """
        means = icgt.RepresentationStats(4).class_means_per_sequence(torch.randn(0, 2, 30, 8),
                                                                     torch.randint(0, 4, (2, 30)), 5, [10, 20])
        result = tuple(means.means.shape) == (0, 2, 2, 4, 8)""", None),
    Case("energy over context of zero layers", """
        out = icgt.EnergyMetrics(icgt.Graph.ring(4)).energy_over_context(torch.randn(0, 2, 30, 8),
                                                                         torch.randint(0, 4, (2, 30)), 5, [10, 20])
        result = tuple(out.energy.shape) == (0, 2)""", None),
    Case("class means of no sequence are NaN", """
        means = icgt.RepresentationStats(4).class_means(torch.randn(0, 30, 8), torch.zeros(0, 30, dtype=torch.long), 5, [10])
        result = bool(means.means.isnan().all()) and int(means.counts.sum()) == 0""", None),
    Case("class means of hidden size 0",
         "icgt.RepresentationStats(4).class_means(torch.randn(2, 30, 0), torch.zeros(2, 30, dtype=torch.long), 5, [10])",
         "ValueError", r"class_means: residuals has shape \[2, 30, 0\], hidden size 0"),
    Case("a window as long as the sequence",
         "icgt.RepresentationStats(4).class_means(torch.randn(2, 30, 8), torch.zeros(2, 30, dtype=torch.long), 30, [10])",
         "ValueError", r"window is 30, outside the sequence of 30 positions; expected 0..29"),
    Case("positions not increasing",
         "icgt.RepresentationStats(4).class_means(torch.randn(2, 30, 8), torch.zeros(2, 30, dtype=torch.long), 5, [10, 10])",
         "ValueError", r"positions must be strictly increasing"),
    Case("a node the graph lacks",
         "icgt.RepresentationStats(4).class_means(torch.randn(2, 30, 8), torch.full((2, 30), 4), 5, [10])",
         "ValueError", r"nodes holds 4"),
    Case("a NaN activation inside a window", """
        x = torch.randn(2, 30, 8); x[1, 8, 3] = float('nan')
        icgt.RepresentationStats(4).class_means(x, torch.zeros(2, 30, dtype=torch.long), 5, [10])""",
         "ValueError", r"residuals holds a NaN or infinite value at index \(1, 8\)"),
    Case("float16 activations give the float32 means", """
        x = torch.randn(3, 2, 40, 8).half(); nodes = torch.randint(0, 4, (2, 40))
        stats = icgt.RepresentationStats(4)
        a = stats.class_means(x, nodes, 10, [15, 39]).means
        b = stats.class_means(x.float(), nodes, 10, [15, 39]).means
        result = torch.allclose(a, b, rtol=1e-3, atol=1e-3, equal_nan=True)""", None),
    Case("non-contiguous activations give the contiguous means", """
        x = torch.randn(2, 40, 3, 8).transpose(1, 2); nodes = torch.randint(0, 4, (3, 40))
        assert not x.is_contiguous()
        stats = icgt.RepresentationStats(4)
        a = stats.class_means(x, nodes, 10, [15, 39]).means
        b = stats.class_means(x.contiguous(), nodes, 10, [15, 39]).means
        result = torch.equal(a.nan_to_num(), b.nan_to_num())""", None),
    Case("aligning principal components of no snapshot", """
        pcs = icgt.RepresentationStats(4).principal_components(torch.randn(3, 4, 6), 2)
        none = icgt.RepresentationStats.PrincipalComponents(pcs.components[:0], pcs.explained_variance_ratio[:0],
                                                           pcs.projections[:0], pcs.mean[:0])
        icgt.RepresentationStats.align_snapshots(none)""", "ValueError",
         r"RepresentationStats.align_snapshots: projections \[0, 4, 2\] holds no snapshot; expected at least one"),
    Case("energy of hidden size 0", "icgt.EnergyMetrics(icgt.Graph.ring(4)).dirichlet_energy(torch.zeros(4, 0))",
         "ValueError", r"dirichlet_energy: representations has shape \[4, 0\], 0 dimensions per node"),
    Case("energy of the wrong number of nodes",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).dirichlet_energy(torch.zeros(5, 3))", "ValueError", r"nodes"),
    Case("an unknown energy kind",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).dirichlet_energy(torch.randn(4, 3), 'cosine')", "ValueError",
         r"kind must be 'raw', 'normalized' or 'scale_invariant', got 'cosine'"),
    Case("a null baseline too large for memory",
         "icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4)).energy_null_baseline(torch.randn(16, 8), num_relabellings=10**8)",
         "ValueError", r"100000000 relabellings of 16 nodes would need about [0-9.]+ GiB"),
    Case("a null baseline of one relabelling",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).energy_null_baseline(torch.randn(4, 3), num_relabellings=1)",
         "ValueError", r"num_relabellings must be an integer from 2"),
    Case("a null baseline with a negative seed",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).energy_null_baseline(torch.randn(4, 3), seed=-3)", "ValueError",
         r"energy_null_baseline: seed must be an integer from 0"),
    Case("alignment that splits a repeated eigenvalue",
         "icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4)).spectral_alignment(torch.randn(16, 5), 1)", "ValueError",
         r"split"),
    Case("negative probabilities", """
        probs = torch.full((1, 3, 4), 0.1); probs[0, 1, 2] = -0.5
        icgt.EnergyMetrics(icgt.Graph.ring(4)).rule_following_accuracy(probs, torch.zeros(1, 3, dtype=torch.long))""",
         "ValueError", r"negative"),
    Case("logits instead of probabilities",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).rule_following_accuracy(torch.full((1, 3, 4), -3.0), "
         "torch.zeros(1, 3, dtype=torch.long))", "ValueError", r"expected probabilities \(softmax outputs, not logits\)"),
    Case("probabilities that sum past 1",
         "icgt.EnergyMetrics(icgt.Graph.ring(4)).rule_following_accuracy(torch.full((1, 3, 4), 3.0), "
         "torch.zeros(1, 3, dtype=torch.long))", "ValueError", r"sums to more than 1 over the nodes at"),
]

CONFIGS = [
    Case("an unknown key has a suggestion", "icgt.study.config.from_dict({'preset': 'grid', 'seqence_length': 300})",
         "ConfigError", r"unknown key 'seqence_length' \(did you mean 'sequence_length'\?\)"),
    Case("true is not a count", "icgt.study.config.preset('grid', num_sequences=True)", "ConfigError",
         r"num_sequences must be an integer, got True \(bool\)"),
    Case("4.7 is not a grid side", "icgt.study.config.preset('grid', graph_size=[4.7, 4])", "ConfigError",
         r"graph_size must be a list of integers, got \[4.7, 4\]"),
    Case("a word is not a length", "icgt.study.config.preset('grid', sequence_length='abc')", "ConfigError",
         r"sequence_length must be an integer, got 'abc' \(str\)"),
    Case("every problem at once", "icgt.study.config.from_dict({'preset': 'grid', 'seed': 1.5, 'mode': 3, 'colour': 1})",
         "ConfigError", r"unknown key 'colour'.*seed must be an integer, got 1.5.*mode must be a string"),
    Case("a negative seed", "icgt.study.config.preset('grid', seed=-1)", "ConfigError",
         r"seed must be an integer from 0 to 2\*\*64 - 1, got -1"),
    Case("a window longer than the sequence", "icgt.study.config.preset('grid', energy_window=5000)", "ConfigError",
         r"energy_window 5000 is not shorter than sequence_length 1400"),
    Case("a disconnected custom graph",
         "icgt.study.config.from_dict({'graph': 'custom', 'edges': [[0, 1], [2, 3]], 'words': list('abcd')})",
         "ConfigError", r"graph is not connected"),
    Case("an unknown preset", "icgt.study.config.preset('spiral')", "ValueError", r"unknown preset 'spiral'"),
    Case("the embedding output as a layer to analyse", "icgt.study.config.preset('grid', layers=[-1, 5])",
         "ConfigError", r"layers must be \"all\" or a non-empty list of block indices from 0 .*got \[-1, 5\]"),
    Case("an unknown model", "icgt.study.config.preset('grid', model='gpt-9')", "ConfigError",
         r"model 'gpt-9' is neither a built-in model"),
    Case("too many tokens", "icgt.study.config.preset('grid', num_sequences=100000)", "ConfigError",
         r"num_sequences x sequence_length = 140000000 tokens; expected at most"),
    Case("invalid TOML", """
        import pathlib, tempfile
        path = pathlib.Path(tempfile.mkdtemp()) / "bad.toml"; path.write_text("preset = grid = 3")
        icgt.study.config.load_toml(path)""", "ValueError", r"is not valid TOML"),
    Case("a TOML file that is not there", "icgt.study.config.load_toml('/no/such/config.toml')", "FileNotFoundError",
         r"experiment config '/no/such/config.toml' does not exist"),
    Case("a config that is not a table", "icgt.study.config.from_dict([1, 2])", "ConfigError",
         r"expected a table of settings, got list"),
    Case("a TOML file that is not UTF-8", """
        import pathlib, tempfile
        path = pathlib.Path(tempfile.mkdtemp()) / "latin1.toml"; path.write_bytes(b'preset = "grid"\\nseq\\xf4 = 1\\n')
        icgt.study.config.load_toml(path)""", "ValueError", r"is not UTF-8 text \(byte \d+\); TOML files are UTF-8"),
    Case("a preset name with a line break", "icgt.study.config.from_dict({'preset': 'd\\nays'})", "ConfigError",
         r"unknown preset 'd\\nays'"),
    Case("a model under a user that does not exist", "icgt.study.config.preset('grid', model='~nosuchuser/model.gguf')",
         "ConfigError", r"model '~nosuchuser/model.gguf' is neither a built-in model"),
    Case("a custom graph with a node id far beyond its words",
         "icgt.study.config.from_dict({'graph': 'custom', 'edges': [[0, 99999991]]})", "ConfigError",
         r"edge list 'edges' of \[node, node\] pairs with nodes 0 to 9999"),
]


def cli(*argv: str) -> str:
    """Code that runs the command line and fails unless it printed one error line and returned 1."""
    return f"""
        import contextlib, io
        from icgt.cli import main
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = main({list(argv)!r})
        lines = stderr.getvalue().splitlines()
        assert status == 1 and len(lines) == 1 and lines[0].startswith("icgt: error: "), (status, lines)
        raise ValueError(lines[0])"""


COMMAND_LINE = [
    Case("--set of a word for a length", cli("run", "--set", "sequence_length=abc"), "ValueError",
         r"sequence_length must be an integer, got 'abc'"),
    Case("--set of a negative seed", cli("run", "--set", "seed=-1"), "ValueError", r"seed must be an integer from 0"),
    Case("--set of a fractional seed", cli("run", "--set", "seed=1.5"), "ValueError", r"seed must be an integer, got 1.5"),
    Case("--set of a boolean count", cli("run", "--set", "num_sequences=true"), "ValueError",
         r"num_sequences must be an integer, got True"),
    Case("--set of an unknown key", cli("run", "--set", "windw=3"), "ValueError", r"unknown key 'windw'"),
    Case("--output naming a file", """
        import tempfile
        output = tempfile.mktemp(); open(output, "w").close()
    """ + cli("run", "--output", "__OUTPUT__").replace("'__OUTPUT__'", "output"), "ValueError",
         r"output '.*' is a file; expected a folder"),
    Case("a read-only output folder", """
        import tempfile
        import icgt.study.aggregate, icgt.cli, icgt.study.config, icgt.study.sweep, icgt.report  # imported before giving up root, which could not read them
        output = tempfile.mkdtemp() + "/runs"; os.makedirs(output, mode=0o555)
        os.chmod(os.path.dirname(output), 0o755)
        if os.geteuid() == 0:
            os.setuid(65534)  # root writes anywhere; permissions bind a plain user
    """ + cli("run", "--output", "__OUTPUT__").replace("'__OUTPUT__'", "output"), "ValueError",
         r"cannot write into the output folder '.*' \(permission denied\)"),
    Case("a complete run of another config", """
        import json, shutil, tempfile
        output = tempfile.mkdtemp()
        shutil.copytree(os.environ['RUN'], output + '/smollm2-135m-grid')
        record = json.load(open(output + '/smollm2-135m-grid/run.json'))
        record['config'] = icgt.study.config.preset('grid', sequence_length=300).to_dict()
        json.dump(record, open(output + '/smollm2-135m-grid/run.json', 'w'))
    """ + cli("run", "--preset", "grid", "--set", "sequence_length=250", "--set", "null_permutations=7", "--output",
              "__OUTPUT__").replace("'__OUTPUT__'", "output"), "ValueError",
         r"holds a complete run of another config \(null_permutations 1000 there, 7 here, pca_positions .*, "
         r"sequence_length 300 there, 250 here\); pass --force"),
    Case("report of a truncated results.npz", """
        import shutil, tempfile
        folder = tempfile.mkdtemp() + '/run'
        shutil.copytree(os.environ['RUN'], folder)
        data = open(folder + '/results.npz', 'rb').read()
        open(folder + '/results.npz', 'wb').write(data[:len(data) // 3])
    """ + cli("report", "__FOLDER__").replace("'__FOLDER__'", "folder"), "ValueError",
         r"results.npz is not a readable numpy .npz archive \(truncated or damaged"),
    Case("report of a folder that is no run", cli("report", "/tmp"), "ValueError", r"/tmp is not an icgt run"),
    Case("export of an unknown model", cli("export", "no-such-model"), "ValueError", r"unknown model 'no-such-model'"),
]

CATALOGUE = GRAPHS + WALKS + BUNDLES + GGUF + TOKEN_IDS + HOOKS + STATISTICS + CONFIGS + COMMAND_LINE
PROBE_PRELUDE = "import os\nprobe = icgt.ActivationProbe(os.environ['TOY'] + '/toy.pt', device='cpu')\n"


def write_bad_extra_files(folder):
    """Toy bundles whose extra files (config.json, vocabulary.hex) are damaged."""
    import torch

    model = toy_model()
    model.record_checksums()
    scripted = torch.jit.script(model)
    good = extra_files()
    lines = good["vocabulary.hex"].encode().split(b"\n")
    lines[1] = b"\xff" + lines[1][1:]  # the first hex digit of line 2
    variants = {
        "vocabulary-ff.pt": {"vocabulary.hex": b"\n".join(lines)},
        "vocabulary-crlf.pt": {"vocabulary.hex": good["vocabulary.hex"].replace("\n", "\r\n")},
        "config-broken.pt": {"config.json": good["config.json"][:-1] + ", }"},
        "config-latin1.pt": {"config.json": '{"format_version": 2, "architecture": "caf\xe9"}'.encode("latin-1")},
        "config-string.pt": {"config.json": '"format_version"'},
        "config-no-dtype.pt": {"config.json": json.dumps({k: v for k, v in json.loads(good["config.json"]).items()
                                                          if k != "dtype"})},
    }
    for name, changed in variants.items():
        torch.jit.save(scripted, str(folder / name), _extra_files={**good, **changed})
    # A one-member archive, its central directory entry then damaged (fields at fixed offsets).
    with zipfile.ZipFile(folder / "member.zip", "w") as archive:
        archive.writestr("x/extra/config.json", good["config.json"])
    data = (folder / "member.zip").read_bytes()
    central = data.index(b"PK\x01\x02")
    method = bytearray(data)
    method[central + 10:central + 12] = struct.pack("<H", 77)  # compression method 77: none such
    (folder / "zip-method-77.pt").write_bytes(bytes(method))
    name = bytearray(data)
    name[central + 8:central + 10] = struct.pack("<H", 0x800)  # the name is flagged UTF-8 ...
    name[central + 46] = 0xFF  # ... and starts with a byte that UTF-8 never has
    (folder / "zip-name-ff.pt").write_bytes(bytes(name))


@pytest.fixture(scope="module")
def runner():
    runner = IsolatedRunner()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """Paths the cases read: toy bundles, GGUF files (good and broken) and a complete run folder."""
    toy = tmp_path_factory.mktemp("toy")
    write_toy_bundles(toy)
    gguf = tmp_path_factory.mktemp("gguf")
    model = tiny_llama({"rope_type": "default", "rope_theta": 10000.0}, tied=True)
    good = write_gguf(gguf / "tiny.gguf", model)
    data = good.read_bytes()
    (gguf / "truncated.gguf").write_bytes(data[: len(data) // 3])
    (gguf / "noise.gguf").write_text("not a gguf file at all")
    write_gguf(gguf / "mamba.gguf", model, architecture="mamba")
    write_gguf(gguf / "no-blocks.gguf", model, skip_keys=("block_count",))
    write_gguf(gguf / "zero-heads.gguf", model, metadata={"attention.head_count": 0})
    write_gguf(gguf / "text-hidden.gguf", model, metadata={"embedding_length": "sixty-four"})
    write_gguf(gguf / "many-blocks.gguf", model, metadata={"block_count": 2**31})
    write_gguf(gguf / "int64-tensor.gguf", model, extra_tensors={"blk.0.ffn_up.weight": np.ones((96, 64), np.int64)})
    write_gguf(gguf / "short-q.gguf", model, extra_tensors={"blk.0.attn_q.weight": np.ones((6, 64), np.float32)})
    length = struct.pack("<Q", len(b"llama"))
    (gguf / "latin1-arch.gguf").write_bytes(data.replace(length + b"llama", length + b"ll\xe9ma", 1))
    # One key, an array of 2**60 uint8 values, and nothing after it (gguf's reader alone would hang).
    key = b"general.endless"
    (gguf / "endless.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                                        + struct.pack("<IIQ", 9, 0, 2**60))
    write_bad_extra_files(toy)
    run = write_synthetic_run(tmp_path_factory.mktemp("run"), "grid")
    return {"TOY": str(toy), "GGUF": str(gguf), "RUN": str(run)}


def test_the_catalogue_is_large_and_its_names_unique():
    assert len(CATALOGUE) >= 60
    assert len({case.name for case in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.name)
def test_bad_input(case, runner, environment):
    prelude = PROBE_PRELUDE if case in TOKEN_IDS + HOOKS else "import os\n"
    code = prelude + textwrap.dedent(case.code)
    report = runner.run(code, env=environment)
    assert report["type"] != "crash", f"{case.name}: {report['message']}"
    if case.error is None:
        assert report["type"] is None, f"{case.name} raised {report['type']}: {report.get('message')}"
        assert report["result"] == "True", f"{case.name} gave {report['result']}"
        return
    assert report["type"] == case.error, f"{case.name}: {report['type']}: {report.get('message')}"
    assert re.search(case.message, report["message"]), f"{case.name}: {report['message']!r}"
    assert "\n" not in report["message"].strip(), f"{case.name}: the message is not one line"
