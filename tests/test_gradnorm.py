"""Tests of gradynamics.gradnorm: transforms, statistics, the optimizer wrapper, the trainers."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import scipy.stats
import torch
from pytorch_optimizer.optimizer.gradient_centralization import centralize_gradient
from torch import nn

from gradynamics import gradnorm as gn
from gradynamics import models
from gradynamics.datasets import ImageData, load_digits

DT = torch.float64


def _model_grads(model: nn.Module, in_channels: int = 3, size: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    model = model.to(DT)
    x = torch.randn(6, in_channels, size, size, dtype=DT)
    y = torch.randint(10, (6,))
    nn.functional.cross_entropy(model(x), y).backward()
    names = gn.eligible_names(model)
    params = dict(model.named_parameters())
    return names, [params[n].grad.clone() for n in names]


MODELS = {
    "mlp": lambda: models.MLP(3 * 8 * 8, 10, width=16),
    "cnn": lambda: models.SmallCNN(3, 10, (4, 8)),
    "vgg": lambda: models.VGGStyle(3, 10, ((4, 4), (8,))),
    "resnet20": lambda: models.cifar_resnet(20, 10, width=4),
}


@pytest.fixture(scope="module")
def tiny_digits() -> ImageData:
    data = load_digits(dtype=DT)
    return ImageData(data.x_train[:128], data.y_train[:128], data.x_test[:100],
                     data.y_test[:100], 10)


# ------------------------------------------------------------------ centring and statistics

@pytest.mark.parametrize("name", sorted(MODELS))
def test_channel_centring_matches_pytorch_optimizer(name):
    _, grads = _model_grads(MODELS[name]())
    reference = [g.clone() for g in grads]
    centralize_gradient(reference, gc_conv_only=False)
    ours = gn.centre(grads, "channel")
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    # and the transform spec of published GC does the same
    out, _, gains = gn.transform_gradients(grads, gn.gradient_centralization())
    for a, b in zip(out, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    assert torch.equal(gains, torch.ones_like(gains))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layer_centring_is_an_orthogonal_projection(name):
    _, grads = _model_grads(MODELS[name]())
    once = gn.centre(grads, "layer")
    twice = gn.centre(once, "layer")
    other = [torch.randn_like(g) for g in grads]
    for g, c, cc, v in zip(grads, once, twice, other, strict=True):
        assert abs(float(c.mean())) < 1e-15 * max(1.0, float(g.abs().max()))
        torch.testing.assert_close(cc, c, rtol=0, atol=1e-16)  # P^2 = P
        pv = gn.centre([v], "layer")[0]
        assert abs(float((v * c).sum() - (pv * g).sum())) < 1e-13  # <v, Pg> = <Pv, g>
        assert float((g * c).sum()) >= 0  # <g, Pg> = |Pg|^2 >= 0


@pytest.mark.parametrize("spec", [gn.sgd(), gn.gradient_centralization(), gn.znorm(),
                                  gn.gan("B"), gn.gan("D", centring="channel")],
                         ids=lambda s: s.name)
def test_statistics_match_torch_reductions(spec):
    _, grads = _model_grads(MODELS["vgg"]())
    _, stats, _ = gn.transform_gradients(grads, spec)
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.testing.assert_close(stats.layer_std, torch.stack([g.std(correction=0) for g in grads]))
    torch.testing.assert_close(stats.layer_mean, torch.stack([g.mean() for g in grads]))
    torch.testing.assert_close(stats.global_std, flat.std(correction=0))
    torch.testing.assert_close(stats.global_mean, flat.mean())
    centred = grads if spec.centring is None else gn.centre(grads, spec.centring)
    flat_c = torch.cat([c.reshape(-1) for c in centred])
    torch.testing.assert_close(stats.centred_std, flat_c.std(correction=0))
    if spec.centring is not None:  # global mean 0 after centring: std = RMS
        torch.testing.assert_close(stats.centred_std, flat_c.norm() / flat_c.numel() ** 0.5)


def test_znorm_output_has_unit_std_per_layer():
    _, grads = _model_grads(MODELS["vgg"]())
    out, stats, gains = gn.transform_gradients(grads, gn.znorm())
    for g, o, gain in zip(grads, out, gains, strict=True):
        torch.testing.assert_close(o.std(correction=0), torch.ones((), dtype=DT))
        assert abs(float(o.mean())) < 1e-12
        torch.testing.assert_close(gain, 1 / g.std(correction=0))
    torch.testing.assert_close(gains, 1 / stats.layer_std)


def test_gan_is_alpha_times_layer_centring():
    _, grads = _model_grads(MODELS["cnn"]())
    centred = gn.centre(grads, "layer")
    sigma = torch.cat([c.reshape(-1) for c in centred]).std(correction=0)
    sigma0 = 2 * sigma
    expected = {"A": 1.0, "B": 1 / sigma, "C": 0.5, "D": 0.5}
    for letter, alpha in expected.items():
        out, _, gains = gn.transform_gradients(grads, gn.gan(letter), step=3,
                                               initial_centred_std=sigma0)
        for c, o in zip(centred, out, strict=True):
            torch.testing.assert_close(o, alpha * c)
        torch.testing.assert_close(gains, torch.full_like(gains, float(alpha)))
    # D caps at 1 when the std grew
    _, _, gains = gn.transform_gradients(grads, gn.gan("D"), initial_centred_std=sigma / 4)
    assert torch.equal(gains, torch.ones_like(gains))
    _, _, gains = gn.transform_gradients(grads, gn.gan("C"), initial_centred_std=sigma / 4)
    torch.testing.assert_close(gains, torch.full_like(gains, 4.0))


def test_batched_kernel_equals_per_member_calls():
    members = [_model_grads(MODELS["cnn"](), seed=s)[1] for s in range(3)]
    stacked = [torch.stack(parts) for parts in zip(*members, strict=True)]
    initial = torch.tensor([1e-3, 2e-3, 5e-2], dtype=DT)
    for spec in (gn.znorm(), gn.gan("C"), gn.gradient_centralization()):
        out, stats, gains = gn.transform_gradients(stacked, spec, 1, initial, batch_dims=1)
        for k, grads in enumerate(members):
            ref, ref_stats, ref_gains = gn.transform_gradients(grads, spec, 1, initial[k])
            for a, b in zip(out, ref, strict=True):
                torch.testing.assert_close(a[k], b)
            torch.testing.assert_close(stats.centred_std[k], ref_stats.centred_std)
            torch.testing.assert_close(gains[k], ref_gains)


def test_zero_gradient_gives_finite_gains():
    grads = [torch.zeros(3, 4, dtype=DT), torch.zeros(2, 2, dtype=DT)]
    for spec in (gn.znorm(), gn.gan("B"), gn.gan("C"), gn.gan("D")):
        out, _, gains = gn.transform_gradients(grads, spec)
        assert all(torch.equal(o, torch.zeros_like(o)) for o in out)
        assert bool(torch.isfinite(gains).all())


# ------------------------------------------------------------------ alpha rules

def test_alpha_rules_take_only_statistics():
    for rule in gn.ALPHA_RULES.values():
        assert list(inspect.signature(rule).parameters) == ["stats"]
    assert list(inspect.signature(gn.gan).parameters) == ["alpha", "centring"]


def test_custom_alpha_rule_is_plugged_in():
    def half(stats):
        return 0.5 * torch.ones_like(stats.centred_std)

    spec = gn.gan(half)
    assert spec.name == "GAN(half)"
    _, grads = _model_grads(MODELS["mlp"]())
    out, _, _ = gn.transform_gradients(grads, spec)
    for o, c in zip(out, gn.centre(grads, "layer"), strict=True):
        torch.testing.assert_close(o, 0.5 * c)


# ------------------------------------------------------------------ the optimizer wrapper

def test_wrapper_transforms_only_eligible_grads_and_keeps_initial_std():
    torch.manual_seed(0)
    model = models.SmallCNN(1, 10, (4, 8)).to(DT)
    opt = gn.TransformedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model,
                                  gn.gan("C"))
    x, y = torch.randn(8, 1, 8, 8, dtype=DT), torch.randint(10, (8,))
    sigmas = []
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        raw = {n: p.grad.clone() for n, p in model.named_parameters()}
        opt.transform()
        sigmas.append(opt.last_stats.centred_std)
        for n, p in model.named_parameters():
            if n in opt.names:
                expected = opt.last_gains[0] * (raw[n] - raw[n].mean())
                torch.testing.assert_close(p.grad, expected)
            else:
                assert torch.equal(p.grad, raw[n])
        opt.optimizer.step()
    assert opt.names == [n for n, p in model.named_parameters() if p.ndim > 1]
    torch.testing.assert_close(opt.last_gains[0], sigmas[-1] / sigmas[0])
    assert len(opt.recorder) == 3


def test_layer_centring_keeps_each_weight_mean_fixed():
    """A real consequence of P: GC-layer and GAN never move the mean of an eligible tensor."""
    torch.manual_seed(1)
    model = models.VGGStyle(1, 10, ((4,), (8,))).to(DT)
    before = {n: float(p.detach().mean()) for n, p in model.named_parameters() if p.ndim > 1}
    opt = gn.TransformedOptimizer(torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9),
                                  model, gn.gan("D"))
    for _ in range(5):
        x, y = torch.randn(16, 1, 8, 8, dtype=DT), torch.randint(10, (16,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in before:
            assert abs(float(p.detach().mean()) - before[n]) < 1e-15
    moved = [n for n, p in model.named_parameters() if n not in before]
    assert moved  # biases and BatchNorm parameters are not eligible


def test_recorder_per_epoch_means():
    rec = gn.StatisticsRecorder()
    for k in range(5):
        value = torch.tensor([float(k)])
        stats = gn.GradientStatistics(k, value[:, None], value[:, None], value, value, value,
                                      value)
        rec.record(stats, value[:, None])
        if k in (1, 4):
            rec.end_epoch()
    torch.testing.assert_close(rec.per_epoch("global_std"),
                               torch.tensor([[0.5], [3.0]]))
    assert rec.steps("gains").shape == (5, 1, 1)


# ------------------------------------------------------------------ trainers

def test_ensemble_equals_torch_optim_runs(tiny_digits):
    """The vmapped trainer takes the same steps as torch.optim.SGD wrapped per model."""
    specs = [gn.sgd(), gn.znorm(), gn.gan("C")]
    seeds = [0, 3]

    def factory():
        return models.SmallCNN(1, 10, (4, 4))

    result = gn.train_ensemble(factory, specs, seeds, tiny_digits, epochs=2, batch_size=32)
    assert result.test_accuracy.shape == (3, 2)
    assert result.per_epoch("layer_std").shape == (2, 3, 2, len(result.layer_names))
    for a, spec in enumerate(specs):
        for s, seed in enumerate(seeds):
            torch.manual_seed(seed)
            model = factory().to(DT)
            accuracy, opt = gn.train_single(model, spec, tiny_digits, 2, seed=seed,
                                            batch_size=32)
            for name, p in model.named_parameters():
                torch.testing.assert_close(result.final_params[name][a * 2 + s], p.detach(),
                                           rtol=0, atol=1e-12)
            assert accuracy == pytest.approx(float(result.test_accuracy[a, s]), abs=1e-12)
            torch.testing.assert_close(opt.recorder.per_epoch("centred_std"),
                                       result.per_epoch("centred_std")[:, a, s])
            torch.testing.assert_close(opt.recorder.steps("gains"),
                                       result.per_step("gains")[:, a, s])
        assert result.arm(spec.name) == a
    with pytest.raises(ValueError, match=r"^name: expected one of \['SGD'"):
        result.arm("Adam")


def test_train_single_reports_epochs(tiny_digits):
    torch.manual_seed(0)
    seen = []
    accuracy, opt = gn.train_single(models.MLP(64, 10, 8), gn.gan("D"), tiny_digits, 2,
                                    batch_size=64,
                                    on_epoch=lambda e, loss, lr: seen.append((e, loss, lr)))
    assert [e for e, _, _ in seen] == [0, 1]
    assert seen[1][2] == pytest.approx(0.05 * 0.5 * (1 + np.cos(np.pi / 2)))
    assert 0 <= accuracy <= 1 and len(opt.recorder.epoch_ends) == 2


# ------------------------------------------------------------------ quadratic toy, spearman

def test_quadratic_descent_gradient_and_descent_lemma():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=DT))
    hessian = q @ torch.diag(torch.linspace(0.1, 1.0, 12, dtype=DT)) @ q.T
    hessian = (hessian + hessian.T) / 2
    theta0 = torch.randn(4, 12, dtype=DT)
    shapes = [(2, 3), (3, 2)]
    run = gn.quadratic_descent(hessian, theta0, shapes, gn.gan("A"), lr=1.0, steps=1)
    grad = torch.func.grad(lambda t: 0.5 * t @ hessian @ t)(theta0[0])
    centred = torch.cat([c.reshape(-1) for c in gn.centre(
        [p.reshape(s) for p, s in zip(grad.split([6, 6]), shapes, strict=True)], "layer")])
    torch.testing.assert_close(run.projected_sq_norm[0, 0], centred.pow(2).sum())
    torch.testing.assert_close(run.loss[1, 0], 0.5 * (theta0[0] - centred) @ hessian
                               @ (theta0[0] - centred))
    run = gn.quadratic_descent(hessian, theta0, shapes, gn.gan("D"), lr=1.5, steps=50)
    bound = run.loss[:-1] - 1.5 * run.gain * (1 - 0.5 * 1.5 * run.gain) * run.projected_sq_norm
    assert bool((run.loss[1:] <= bound + 1e-12).all())


def test_compare_arms_against_scipy_and_the_t_formula():
    generator = torch.Generator().manual_seed(0)
    a = 97 + torch.rand(5, generator=generator, dtype=DT)
    b = 96.5 + torch.rand(5, generator=generator, dtype=DT)
    result = gn.compare_arms(a, b)
    an, bn = a.numpy(), b.numpy()
    assert result.difference == pytest.approx(an.mean() - bn.mean(), abs=1e-12)
    pooled = np.sqrt((an.var(ddof=1) + bn.var(ddof=1)) / 2)
    assert result.pooled_std == pytest.approx(pooled, rel=1e-12)
    # the pooled std is the one of Student's two-sample t statistic (equal variances)
    t_ind = scipy.stats.ttest_ind(an, bn).statistic
    assert result.difference / (pooled * np.sqrt(2 / 5)) == pytest.approx(t_ind, rel=1e-12)
    # the paired interval by hand: mean difference +- t_{0.975, n-1} sd / sqrt(n)
    d = an - bn
    half = scipy.stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert result.ci_low == pytest.approx(d.mean() - half, rel=1e-10)
    assert result.ci_high == pytest.approx(d.mean() + half, rel=1e-10)
    assert result.resolved == (abs(d.mean()) > 2 * pooled)
    far = gn.compare_arms(a + 10, a)  # a constant shift: no spread, resolved, exact interval
    assert far.difference == pytest.approx(10) and far.ci_low == far.ci_high == far.difference
    assert far.resolved and not gn.compare_arms(a, a).resolved


def test_spearman_matches_scipy():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(20, generator=generator, dtype=DT)
    y = torch.rand(20, 3, generator=generator, dtype=DT)
    ours = gn.spearman(x, y)
    for k in range(3):
        assert float(ours[k]) == pytest.approx(scipy.stats.spearmanr(x, y[:, k])[0], abs=1e-12)


# ------------------------------------------------------------------ errors

def test_errors():
    g = [torch.randn(3, 4)]
    with pytest.raises(ValueError, match=r"^grads: expected a non-empty sequence"):
        gn.centre([])
    with pytest.raises(ValueError, match=r"^grads: mixed dtypes"):
        gn.centre([torch.randn(2, 2), torch.randn(2, 2, dtype=DT)])
    with pytest.raises(ValueError, match=r"^grads: contains NaN"):
        gn.transform_gradients([torch.full((2, 2), float("nan"))], gn.sgd())
    with pytest.raises(ValueError, match=r"^centring: expected 'layer' or 'channel'"):
        gn.centre(g, "row")
    with pytest.raises(ValueError, match=r"^spec: expected a TransformSpec"):
        gn.transform_gradients(g, "gan")
    with pytest.raises(ValueError, match=r"^step: expected an integer >= 0"):
        gn.transform_gradients(g, gn.sgd(), step=-1)
    with pytest.raises(ValueError, match=r"^initial_centred_std: expected a tensor"):
        gn.transform_gradients(g, gn.gan("C"), initial_centred_std=torch.ones(2))
    with pytest.raises(ValueError, match=r"^batch_dims: expected an integer"):
        gn.centre(g, batch_dims=-1)
    with pytest.raises(ValueError, match=r"^alpha: expected one of"):
        gn.gan("E")
    with pytest.raises(ValueError, match=r"^centring: expected 'channel' or 'layer'"):
        gn.gradient_centralization("row")
    with pytest.raises(ValueError, match=r"^centring: expected one of"):
        gn.TransformSpec("x", centring="row")
    with pytest.raises(ValueError, match=r"^name: expected a non-empty string"):
        gn.TransformSpec("")


def test_wrapper_and_trainer_errors(tiny_digits):
    model = models.MLP(64, 10, 8)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^optimizer: expected a torch.optim.Optimizer"):
        gn.TransformedOptimizer("sgd", model, gn.sgd())
    with pytest.raises(ValueError, match=r"^eligible: selects no parameter"):
        gn.TransformedOptimizer(sgd, model, gn.sgd(), eligible=lambda n, p: False)
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module"):
        gn.eligible_names("model")
    opt = gn.TransformedOptimizer(sgd, model, gn.sgd())
    with pytest.raises(ValueError, match=r"^model: no gradient for eligible parameters"):
        opt.step()
    with pytest.raises(ValueError, match=r"^specs: expected a non-empty sequence"):
        gn.train_ensemble(lambda: model, [], [0], tiny_digits, 1)
    with pytest.raises(ValueError, match=r"^seeds: expected a non-empty sequence"):
        gn.train_ensemble(lambda: model, [gn.sgd()], [], tiny_digits, 1)
    with pytest.raises(ValueError, match=r"^batch_size: 1000 exceeds"):
        gn.train_single(model, gn.sgd(), tiny_digits, 1, batch_size=1000)
    with pytest.raises(ValueError, match=r"^lr: expected > 0"):
        gn.train_single(model, gn.sgd(), tiny_digits, 1, lr=-1.0)
    with pytest.raises(ValueError, match=r"^data: expected an ImageData"):
        gn.train_single(model, gn.sgd(), "digits", 1)
    with pytest.raises(ValueError, match=r"^name: expected one of"):
        gn.StatisticsRecorder().steps("loss")
    with pytest.raises(ValueError, match=r"^name: nothing recorded yet"):
        gn.StatisticsRecorder().steps("gains")
    with pytest.raises(ValueError, match=r"^x: expected shape \(n,\) with n >= 3"):
        gn.spearman(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"^y: expected shape \(4, \.\.\.\)"):
        gn.spearman(torch.ones(4), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"^y: expected a floating-point tensor"):
        gn.spearman(torch.ones(4), torch.ones(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        gn.spearman(torch.tensor([0.0, 1.0, float("nan")]), torch.ones(3))
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module"):
        gn.evaluate("net", tiny_digits)
    with pytest.raises(ValueError, match=r"^data: expected an ImageData"):
        gn.evaluate(model, "digits")
    with pytest.raises(ValueError, match=r"^batch_size: expected an integer >= 1"):
        gn.evaluate(model, tiny_digits, batch_size=0)
    with pytest.raises(ValueError, match=r"^model_factory: expected a callable"):
        gn.train_ensemble("net", [gn.sgd()], [0], tiny_digits, 1)
    recorder = gn.StatisticsRecorder()
    with pytest.raises(ValueError, match=r"^stats: expected a GradientStatistics"):
        recorder.record("stats", torch.ones(1))
    value = torch.ones(1)
    stats = gn.GradientStatistics(0, value[:, None], value[:, None], value, value, value, value)
    with pytest.raises(ValueError, match=r"^gains: expected a tensor of shape \(1, 1\)"):
        recorder.record(stats, torch.ones(2))
    recorder.record(stats, value[:, None])
    with pytest.raises(ValueError, match=r"^name: no epoch was completed"):
        recorder.per_epoch("gains")
    with pytest.raises(ValueError, match=r"^accuracy_a: expected shape \(seeds,\) with >= 2"):
        gn.compare_arms(torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match=r"^accuracy_b: expected shape \(3,\)"):
        gn.compare_arms(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match=r"^accuracy_b: contains NaN"):
        gn.compare_arms(torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match=r"^confidence: expected a number in \(0, 1\)"):
        gn.compare_arms(torch.ones(3), torch.zeros(3), confidence=95)
    h = torch.eye(4, dtype=DT)
    with pytest.raises(ValueError, match=r"^hessian: expected a symmetric matrix"):
        gn.quadratic_descent(torch.triu(torch.ones(4, 4, dtype=DT)), torch.ones(1, 4, dtype=DT),
                             [(2, 2)], gn.sgd(), 0.1, 2)
    with pytest.raises(ValueError, match=r"^shapes: expected tensor shapes"):
        gn.quadratic_descent(h, torch.ones(1, 4, dtype=DT), [(3,)], gn.sgd(), 0.1, 2)
    with pytest.raises(ValueError, match=r"^theta0: expected shape"):
        gn.quadratic_descent(h, torch.ones(4, dtype=DT), [(2, 2)], gn.sgd(), 0.1, 2)
    with pytest.raises(ValueError, match=r"^theta0: contains NaN"):
        gn.quadratic_descent(h, torch.full((1, 4), float("nan"), dtype=DT), [(2, 2)], gn.sgd(),
                             0.1, 2)
    with pytest.raises(ValueError, match=r"^hessian: contains NaN"):
        gn.quadratic_descent(h * float("nan"), torch.ones(1, 4, dtype=DT), [(2, 2)], gn.sgd(),
                             0.1, 2)
    with pytest.raises(ValueError, match=r"^lr: expected > 0"):
        gn.quadratic_descent(h, torch.ones(1, 4, dtype=DT), [(2, 2)], gn.sgd(), 0.0, 2)


def test_benchmark_smoke_on_random_data(tmp_path):
    """benchmarks/bench_gradnorm.py (the CIFAR-100/ResNet-20 run) on random CIFAR-shaped data."""
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gradnorm.py"
    spec = importlib.util.spec_from_file_location("bench_gradnorm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "smoke.json"
    assert bench.main(["--random-data", "--random-size", "32", "16", "--epochs", "1",
                       "--batch-size", "16", "--width", "2", "--methods", "SGD", "GAN-D",
                       "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["topic"] == "gradnorm" and results["quick"] is False and results["wall_s"] > 0
    assert [r["method"] for r in results["runs"]] == ["SGD", "GAN-D"]
    for run in results["runs"]:
        assert 0 <= run["test_accuracy"] <= 1
        assert len(run["layer_std_per_epoch"][0]) == len(run["layer_names"]) == 20
    assert results["runs"][1]["max_gain"] <= 1.0
    with pytest.raises(ValueError, match=r"^model: expected resnet20"):
        bench.build_model("resnet18", 16)
