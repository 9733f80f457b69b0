"""``pretrain(compile=True)``: the compiled forward trains the same model as the eager
one (to float rounding), keeps performer-pytorch's feature-redraw schedule, and the
sparse gene graph goes through compile as one op."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from performer_pytorch import Performer

import bulkformer
from bulkformer.model.graph_conv import propagate, sparse_graph_conv
from bulkformer.training.compilation import check_compilable, compiled_forward


def _has_compiler() -> bool:
    try:  # the same test pretrain(compile=True) makes
        check_compilable(torch.device("cpu"))
    except RuntimeError:
        return False
    return True


needs_compiler = pytest.mark.skipif(not _has_compiler(), reason="torch.compile on CPU needs a C++ compiler")


def test_graph_op_matches_the_published_message_passing_forward_and_backward():
    model = bulkformer.tiny_bundle(n_genes=40).model
    conv = model.gb_formers[0].g
    h = torch.randn(3, 40, model.config.dim, requires_grad=True)
    published = conv(h, model.graph_source_target, model.graph_edge_weight)
    (published_grad,) = torch.autograd.grad(published.square().sum(), h)
    ours = sparse_graph_conv(conv, h, model.graph_adjacency())
    (our_grad,) = torch.autograd.grad(ours.square().sum(), h)
    torch.testing.assert_close(ours, published, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(our_grad, published_grad, rtol=1e-5, atol=1e-6)
    # reversed edges give other numbers: the comparison can fail
    reversed_graph = model.graph_adjacency().transposed()
    assert (sparse_graph_conv(conv, h, reversed_graph) - published).abs().max() > 1e-2
    torch.library.opcheck(propagate, (torch.randn(40, 6), *model.graph_adjacency().parts,
                                      *model.graph_adjacency().transpose_parts))


@needs_compiler
def test_compiled_pretraining_matches_eager():
    vocabulary = bulkformer.annotation.default_vocabulary().iloc[:48]
    cohort = bulkformer.simulate_cohort(n_samples=40, vocabulary=vocabulary, n_genes=None, seed=3)
    settings = dict(vocabulary=vocabulary, dim=8, heads=2, p_repeat=1, batch_size=8, epochs=2, lr=3e-3,
                    dropout=0.0, observed_weight=0.25, val_fraction=0.0, precision="fp32", progress=False)
    eager = bulkformer.pretrain(cohort, None, **settings)
    compiled = bulkformer.pretrain(cohort, None, compile=True, **settings)
    np.testing.assert_allclose(compiled.history["loss"], eager.history["loss"], rtol=1e-4)
    for (name, ours), (_, theirs) in zip(compiled.bundle.model.state_dict().items(),
                                         eager.bundle.model.state_dict().items()):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-5, msg=name)
    # the Performers check their own redraws again after training
    assert all(p.auto_check_redraw for p in compiled.bundle.model.modules() if isinstance(p, Performer))


@needs_compiler
def test_compiled_forward_keeps_the_feature_redraw_schedule():
    import copy

    model = bulkformer.tiny_bundle(n_genes=30).model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # dropout would draw from the RNG the redraws use
    for performer in (m for m in model.modules() if isinstance(m, Performer)):
        performer.proj_updater.feature_redraw_interval = 2
    twin = copy.deepcopy(model)
    x = torch.rand(2, 30) * 5

    def projections(net):
        return [b.clone() for n, b in net.named_buffers() if n.endswith("projection_matrix")]

    def run(net, forward):
        torch.manual_seed(0)
        seen = [projections(net)]
        for _ in range(4):
            forward(x, 0.0)
            seen.append(projections(net))
        return seen

    eager = run(twin, twin)
    with compiled_forward(model, model) as forward:
        assert not any(p.auto_check_redraw for p in model.modules() if isinstance(p, Performer))
        compiled = run(model, forward)
    assert all(p.auto_check_redraw for p in model.modules() if isinstance(p, Performer))
    for ours, theirs in zip(compiled, eager):
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and the schedule did redraw (interval 2: at the third call), so the comparison can fail
    assert not torch.equal(eager[2][0], eager[3][0]) and torch.equal(eager[0][0], eager[2][0])
