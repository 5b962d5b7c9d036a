"""TransformerLens habits on the probe (issue 24, section 3): activations looked up as ActivationCache's
cache["z", 5], residuals by block, hooks fn(activation, hook) through run_with_hooks beside icgt's
fn(layer, tensor), and gradients through a run (grad=True) against torch autograd on the plain model."""

from collections.abc import Mapping

import pytest
import torch
from toy_bundle import toy_model, write_toy_bundles

import icgt
from icgt.probe import TransformerLensHookPoint

IDS = torch.tensor([[0, 5, 6, 7, 5, 6, 8, 9], [0, 1, 2, 3, 4, 45, 44, 46]])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return icgt.ActivationProbe(write_toy_bundles(tmp_path_factory.mktemp("toy")), device="cpu")


@pytest.fixture(scope="module")
def plain():
    """The toy bundle's model as plain PyTorch (icgt.models.CausalLM with the bundle's weights, eager)."""
    return toy_model()


# --- activations and residuals ------------------------------------------------------------------

def test_activations_are_looked_up_by_every_form_capture_takes(toy):
    result = toy.run(IDS, capture=[("z", 1), ("pattern", 0), ("resid_post", 2)])
    activations = result.activations
    z = activations["blocks.1.attn.hook_z"]
    assert activations["z", 1] is z and activations[(1, "z")] is z and activations["attn.hook_z", 1] is z
    assert activations["pattern", 0].shape == (2, 4, 8, 8)
    assert activations[2] is activations["resid_post", 2] is activations["blocks.2.hook_resid_post"]
    assert isinstance(activations, Mapping) and len(activations) == 3
    assert list(activations) == activations.keys() == [
        "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z", "blocks.2.hook_resid_post"]
    assert dict(activations.items()).keys() == dict(activations).keys()
    assert all(a is b for a, b in zip(activations.values(), [activations[name] for name in activations]))
    assert ("z", 1) in activations and "blocks.1.attn.hook_z" in activations
    assert ("z", 2) not in activations and "blocks.1.hook_nothing" not in activations and 2.5 not in activations
    assert activations.get(("z", 1)) is z and activations.get(("z", 2)) is None and activations.get("x", 0) == 0
    assert repr(activations).startswith("Activations({'blocks.0.attn.hook_pattern': [2, 4, 8, 8], ")


@pytest.mark.parametrize("key,message", [
    (("z", 2), r"blocks\.2\.attn\.hook_z was not captured; captured: 'blocks\.1\.attn\.hook_z'.$"),
    ("blocks.1.hook_nothing", r"'blocks\.1\.hook_nothing' is not a hook point \(.*'hook_nothing' is not a hook point "
                              r"icgt has.*\); captured: 'blocks\.1\.attn\.hook_z'"),
    (2.5, r"2\.5 is not a hook point \(.*a hook point is a name such as.*\); captured: 'blocks\.1\.attn\.hook_z'"),
    (("resid_post", 0), r"blocks\.0\.hook_resid_post was not captured; captured: 'blocks\.1\.attn\.hook_z'; layer 0 "
                        r"was asked for with layers=: result\.residual\(0\)"),
])
def test_a_point_not_captured_is_a_key_error_naming_what_was(toy, key, message):
    activations = toy.run(IDS, layers=[0], capture=[("z", 1)]).activations
    with pytest.raises(KeyError, match=message):
        activations[key]


def test_nothing_captured_says_where_captures_are_asked_for(toy):
    with pytest.raises(KeyError, match=r"captured: nothing \(capture= names what a run keeps\)"):
        toy.run(IDS).activations["z", 0]


def test_a_residual_by_block_is_the_one_asked_for_in_that_place(toy, plain):
    result = toy.run(IDS, layers=[2, icgt.EMBEDDING_LAYER, 0], capture=[("resid_post", 1)])
    states = plain.hidden_states(IDS)
    for position, layer in enumerate([2, icgt.EMBEDDING_LAYER, 0]):
        assert torch.equal(result.residual(layer), result.residuals[position])
        torch.testing.assert_close(result.residual(layer), states[layer + 1], rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match=r"layer 1's residual was not asked for; layers=\[2, -1, 0\] were; it was "
                                       r"captured: result\.activations\['blocks\.1\.hook_resid_post'\]"):
        result.residual(1)
    with pytest.raises(KeyError, match=r"layer 5's residual was not asked for; layers=\[2, -1, 0\] were.$"):
        result.residual(5)
    with pytest.raises(TypeError, match="layer must be an integer"):
        result.residual("2")


# --- hooks: icgt's fn(layer, tensor) and TransformerLens's fn(activation, hook) ----------------------

def test_a_transformer_lens_hook_does_what_the_same_icgt_hook_does(toy):
    direction = torch.linspace(-1, 1, 16)
    lens = toy.run_with_hooks(IDS, fwd_hooks=[("blocks.0.hook_resid_post", lambda residual, hook: residual + direction),
                                              ("blocks.1.attn.hook_z", lambda z, hook: z * 2)],
                              layers=[2], logits="all")
    ours = toy.run(IDS, hooks={0: lambda layer, residual: residual + direction, ("z", 1): lambda layer, z: z * 2},
                   layers=[2], logits="all")
    assert torch.equal(lens.residuals, ours.residuals) and torch.equal(lens.logits, ours.logits)
    assert not torch.equal(lens.residuals, toy.run(IDS, layers=[2]).residuals)


def test_a_filter_hooks_every_point_it_is_true_at_and_the_hook_knows_its_name_and_block(toy):
    seen = []

    def record(activation, hook):
        seen.append((hook.name, hook.layer(), tuple(activation.shape)))

    toy.run_with_hooks(IDS, fwd_hooks=[(lambda name: name.endswith("attn.hook_z"), record)])
    assert seen == [(f"blocks.{layer}.attn.hook_z", layer, (2, 8, 4, 4)) for layer in range(3)]


def test_several_hooks_at_one_point_run_in_order(toy):
    calls = []
    hooks = [("blocks.1.hook_mlp_out", lambda mlp, hook: calls.append("first") or mlp * 0),
             ("blocks.1.hook_mlp_out", lambda mlp, hook: calls.append(("second", bool(mlp.eq(0).all()))))]
    result = toy.run_with_hooks(IDS, fwd_hooks=hooks, capture=[("mlp_out", 1)])
    assert calls == ["first", ("second", True)] and bool(result.activations["mlp_out", 1].eq(0).all())
    # run's hooks= takes the same (point, fn) pairs in icgt's form
    calls.clear()
    toy.run(IDS, hooks=[(("mlp_out", 1), lambda layer, mlp: calls.append(1)), (("mlp_out", 1), lambda layer, mlp: calls.append(2))])
    assert calls == [1, 2]


def test_the_hook_point_of_a_transformer_lens_hook():
    assert TransformerLensHookPoint("blocks.12.hook_resid_pre").layer() == 12
    with pytest.raises(ValueError, match="hook_embed is in no block"):
        TransformerLensHookPoint("hook_embed").layer()


def one_argument(activation):
    return activation


def three_arguments(layer, activation, scale):
    return activation * scale


def lens_form(activation, hook):
    return activation


@pytest.mark.parametrize("register", [
    lambda probe, fn: probe.add_hook(("z", 1), fn),
    lambda probe, fn: probe.run(IDS, hooks={("z", 1): fn}),
])
@pytest.mark.parametrize("fn,message", [
    (one_argument, r"one_argument\(activation\), cannot take two positional arguments"),
    (three_arguments, r"three_arguments\(layer, activation, scale\), cannot take two positional arguments"),
    (lens_form, r"lens_form\(activation, hook\), has TransformerLens's form"),
])
def test_an_icgt_hook_of_another_signature_is_refused_naming_both_forms(toy, register, fn, message):
    with pytest.raises(TypeError, match=message + r"; icgt calls a hook as fn\(layer, tensor\) .*and TransformerLens's "
                                                  r"fn\(activation, hook\) goes in run_with_hooks"):
        register(toy, fn)
    toy.clear_hooks()


@pytest.mark.parametrize("fn,message", [
    (one_argument, r"one_argument\(activation\), cannot be called"),
    (three_arguments, r"three_arguments\(layer, activation, scale\), cannot be called"),
    (lambda layer, residual: residual, r"<lambda>\(layer, residual\), cannot be called"),
])
def test_a_transformer_lens_hook_of_another_signature_is_refused_naming_both_forms(toy, fn, message):
    with pytest.raises(TypeError, match=r"the hook for blocks\.0\.hook_resid_post, " + message + r" as TransformerLens "
                                        r"calls a hook, fn\(activation, hook=hook_point\); icgt's own form "
                                        r"fn\(layer, tensor\) goes in run's hooks= or add_hook"):
        toy.run_with_hooks(IDS, fwd_hooks=[("blocks.0.hook_resid_post", fn)])


@pytest.mark.parametrize("fwd_hooks,error,message", [
    ([("blocks.0.hook_z",)], TypeError, r"fwd_hooks holds \('blocks\.0\.hook_z',\); expected \(name, fn\) pairs"),
    ([("blocks.0.hook_z", lens_form)], ValueError, r"'blocks\.0\.hook_z' is not a hook point name; the names are like "
                                                   r"'hook_embed'"),
    ([(("z", 0), lens_form)], TypeError, r"a hook's name is \('z', 0\); expected a hook point's name or a function"),
    ([(lambda name: False, lens_form)], ValueError, "is true at no hook point"),
    ([("blocks.0.attn.hook_z", "not a function")], TypeError, r"the hook for blocks\.0\.attn\.hook_z is a str; "
                                                              r"expected a callable fn\(activation, hook\)"),
])
def test_bad_fwd_hooks(toy, fwd_hooks, error, message):
    with pytest.raises(error, match=message):
        toy.run_with_hooks(IDS, fwd_hooks=fwd_hooks)


@pytest.mark.parametrize("hooks,message", [
    (3, r"hooks is a int; expected \{point: fn\} or a list of \(point, fn\) pairs"),
    ("blocks.0.hook_resid_post", r"hooks is a str; expected"),
    ([("blocks.0.hook_resid_post",)], r"hooks holds \('blocks\.0\.hook_resid_post',\); expected"),
])
def test_bad_hooks_of_run(toy, hooks, message):
    with pytest.raises(TypeError, match=message):
        toy.run(IDS, hooks=hooks)


# --- gradients ------------------------------------------------------------------------------------

def marking(saved):
    """An icgt hook that makes the tensor at its point a leaf that requires grad, kept in saved."""
    def mark(layer, activation):
        saved.append(activation.detach().requires_grad_())
        return saved[-1]
    return mark


def test_the_gradient_of_a_logit_by_a_residual_equals_autograd_on_the_plain_model(toy, plain):
    saved = []
    result = toy.run(IDS, hooks={0: marking(saved)}, logits="last", grad=True)
    ours, = torch.autograd.grad(result.logits[:, 0, 5].sum(), saved[0])

    residual = plain.hidden_states(IDS)[1].detach().requires_grad_()
    hidden = residual
    for block in list(plain.blocks)[1:]:
        hidden = block(hidden, None)
    theirs, = torch.autograd.grad(plain.head(plain.final_norm(hidden))[:, -1, 5].sum(), residual)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_gradient_of_target_probabilities_by_a_residual_equals_autograd_on_the_plain_model(toy, plain):
    # The probabilities' normaliser is computed in place over each chunk of logits: its gradient too.
    saved = []
    result = toy.run(IDS, hooks={0: marking(saved)}, target_ids=[5, 6], grad=True)
    ours, = torch.autograd.grad((result.target_probs * torch.tensor([1.0, -2.0])).sum(), saved[0])

    residual = plain.hidden_states(IDS)[1].detach().requires_grad_()
    hidden = residual
    for block in list(plain.blocks)[1:]:
        hidden = block(hidden, None)
    probabilities = plain.head(plain.final_norm(hidden)).softmax(-1)[..., [5, 6]]
    theirs, = torch.autograd.grad((probabilities * torch.tensor([1.0, -2.0])).sum(), residual)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_gradient_of_a_captured_activation_by_the_start_residual_equals_autograd(toy, plain):
    start = plain.hidden_states(IDS)[1].detach().requires_grad_()  # the residual entering block 1
    result = toy.run(IDS, start_residual=start, start_layer=1, capture=[("mlp_out", 2), ("pattern", 2)],
                     max_batch=1, grad=True)  # two passes: the gradient reaches start through both
    objective = result.activations["mlp_out", 2].square().sum() + result.activations["pattern", 2][:, :, -1, 0].sum()
    ours, = torch.autograd.grad(objective, start)

    plain_start = start.detach().requires_grad_()
    block1, block2 = plain.blocks[1], plain.blocks[2]
    hidden = block1(plain_start, None)
    q, k, _ = block2.attn.project(block2.attention_input(hidden))
    pattern = block2.attn.pattern(q, k, 0, IDS.shape[1])
    middle = hidden + block2.attention_output(block2.attn.attend(*block2.attn.project(block2.attention_input(hidden))))
    objective = block2.mlp_output(middle).square().sum() + pattern[:, :, -1, 0].sum()
    theirs, = torch.autograd.grad(objective, plain_start)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_run_with_grad_computes_what_an_inference_run_computes_into_ordinary_tensors(toy):
    asked = dict(layers=[0, 2], capture=[("z", 1)], logits="all", target_ids=[5, 6])
    inference, with_grad = toy.run(IDS, **asked), toy.run(IDS, **asked, grad=True)
    for name in ["residuals", "logits", "target_probs"]:
        assert torch.equal(getattr(inference, name), getattr(with_grad, name)), name
    assert torch.equal(inference.activations["z", 1], with_grad.activations["z", 1])
    assert inference.residuals.is_inference() and not with_grad.residuals.is_inference()
    assert not with_grad.residuals.requires_grad  # nothing was marked: no graph


def test_a_linear_probe_trains_on_the_activations_of_a_run_with_grad(toy):
    residuals = toy.run(IDS, layers=[1], grad=True).residual(1).reshape(-1, 16)
    labels = IDS.reshape(-1) % 2
    linear = torch.nn.Linear(16, 2)
    optimiser = torch.optim.SGD(linear.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(linear(residuals), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        linear(toy.run(IDS, layers=[1]).residual(1)).sum().backward()  # why grad=True exists


def test_grad_through_head_ablations_and_hooks_that_edit_in_place(toy):
    """Both change tensors that attention's backward needs (its output z, the softmax's pattern)."""
    def zero_head_0(activation, hook):
        activation[:, 0] = 0

    ablations = [icgt.HeadAblation(1, [0], "zero"), icgt.HeadAblation(1, [2], "mean")]
    for hooked in ["blocks.2.attn.hook_z", "blocks.2.attn.hook_pattern"]:
        saved = []
        mark = marking(saved)
        result = toy.run_with_hooks(IDS, fwd_hooks=[("blocks.0.hook_resid_post", lambda residual, hook: mark(0, residual)),
                                                    (hooked, zero_head_0)],
                                    ablations=ablations, logits="last", grad=True)
        gradient, = torch.autograd.grad(result.logits.sum(), saved[0])
        without_grad = toy.run_with_hooks(IDS, fwd_hooks=[(hooked, zero_head_0)], ablations=ablations, logits="last")
        assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0, hooked
        assert torch.equal(result.logits, without_grad.logits), hooked


def test_grad_under_no_grad_builds_no_graph(toy):
    with torch.no_grad():  # the caller's grad mode holds: no graph
        assert not toy.run(IDS, hooks={0: marking([])}, logits="last", grad=True).logits.requires_grad
