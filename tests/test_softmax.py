import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics as gd
from gradynamics import softmax as sm

F64 = torch.float64


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 10_000))
def test_jacobian_equals_autograd_and_fisher(n, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    z = 4 * torch.randn(batch, n, dtype=F64, generator=gen)
    p = sm.softmax(z)
    auto = torch.vmap(torch.func.jacrev(lambda v: torch.softmax(v, -1)))(z)
    gd.compare(sm.softmax_jacobian(p), auto).assert_below(abs_tol=1e-13)
    gd.compare(sm.categorical_fisher(z), auto).assert_below(abs_tol=1e-13)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000))
def test_cross_entropy_and_gradient(n, seed):
    gen = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(5, n, dtype=F64, generator=gen)
    target = torch.randint(n, (5,), generator=gen)
    reference = torch.nn.functional.cross_entropy(z, target, reduction="none")
    gd.compare(sm.cross_entropy(z, target), reference).assert_below(abs_tol=1e-13)
    z_req = z.clone().requires_grad_(True)
    sm.cross_entropy(z_req, target).sum().backward()
    gd.compare(sm.cross_entropy_logit_gradient(z, target), z_req.grad).assert_below(abs_tol=1e-14)


def test_softmax_is_stable_for_large_logits():
    p = sm.softmax(torch.tensor([1000.0, 999.0], dtype=F64))
    assert torch.isfinite(p).all() and abs(float(p.sum()) - 1) < 1e-15


def test_monte_carlo_fisher_is_unbiased_ish():
    gen = gd.seed_everything(1)
    z = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    estimates = sm.monte_carlo_fisher(z, 20_000, repeats=4, generator=gen)
    assert estimates.shape == (4, 3, 3)
    gd.compare(estimates.mean(0), sm.categorical_fisher(z)).assert_below(abs_tol=5e-3)


def test_float32_probabilities_accepted():
    z = 3 * torch.randn(10)
    assert sm.softmax_jacobian(sm.softmax(z)).dtype == torch.float32


@pytest.mark.parametrize("call, pattern", [
    (lambda: sm.softmax(torch.tensor([1.0, float("nan")])), r"^z: contains 1 NaN"),
    (lambda: sm.softmax(torch.tensor(1.0)), r"^z: expected at least one logit"),
    (lambda: sm.softmax(torch.tensor([1, 2])), r"^z: expected floating-point logits"),
    (lambda: sm.softmax_jacobian(torch.tensor([0.5, 0.6])), r"^p: probabilities must sum"),
    (lambda: sm.softmax_jacobian(torch.tensor([1.5, -0.5])), r"^p: expected non-negative"),
    (lambda: sm.softmax_jacobian(torch.tensor([1, 0])), r"^p: expected floating-point"),
    (lambda: sm.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3])),
     r"^target: labels must lie in \[0, 2\]"),
    (lambda: sm.cross_entropy(torch.zeros(2, 3), torch.tensor([0])),
     r"^target: expected shape \(2,\)"),
    (lambda: sm.cross_entropy_logit_gradient(torch.zeros(3), torch.tensor(0.5)),
     r"^target: expected integer class labels"),
    (lambda: sm.cross_entropy_logit_gradient(torch.zeros(3), torch.tensor(True)),
     r"^target: expected a numeric array"),
    (lambda: sm.monte_carlo_fisher(torch.zeros(2, 3), 10), r"^z: expected one logit vector"),
    (lambda: sm.monte_carlo_fisher(torch.zeros(3), 0), r"^num_samples: expected a positive"),
    (lambda: sm.monte_carlo_fisher(torch.zeros(3), 10, repeats=-1), r"^repeats: expected a"),
])
def test_bad_input_raises_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_integer_probabilities_are_rejected_not_silently_int64():
    # a one-hot int64 vector is a valid distribution in value, but its Jacobian would be int64
    with pytest.raises(ValueError, match=r"^p: expected floating-point probabilities, got "
                                         r"torch.int64"):
        sm.softmax_jacobian(torch.tensor([0, 1, 0]))


def test_the_shared_label_validator():
    from gradynamics.validation import check_class_labels

    labels = check_class_labels("y", torch.tensor([[0, 2]], dtype=torch.int32), (1, 2), 3)
    assert labels.dtype == torch.int64 and labels.tolist() == [[0, 2]]
    assert check_class_labels("y", torch.zeros(0, dtype=torch.int64), (0,), 3).numel() == 0
    with pytest.raises(ValueError, match=r"^y: labels must lie in \[0, 2\], got \[-1, 0\]"):
        check_class_labels("y", torch.tensor([-1, 0]), (2,), 3)
    with pytest.raises(ValueError, match=r"^y: expected shape \(3,\), got \(2,\)"):
        check_class_labels("y", torch.tensor([0, 1]), (3,), 3)
    with pytest.raises(ValueError, match=r"^y: expected a numeric array"):
        check_class_labels("y", "abc", (3,), 3)


def test_symbolic_softmax_matches_numeric_and_rejects_bad_input():
    import sympy as sp

    z = sp.symbols("z1:4", real=True)
    p = sm.symbolic_softmax(z)
    values = {z[0]: 0.5, z[1]: -1.0, z[2]: 2.0}
    numeric = torch.tensor([float(pi.subs(values)) for pi in p], dtype=F64)
    expected = sm.softmax(torch.tensor([0.5, -1.0, 2.0], dtype=F64))
    gd.compare(numeric, expected).assert_below(abs_tol=1e-15)
    gd.assert_sympy_zero(sum(p) - 1, simplifier=gd.cancel_exponentials)
    for bad in ([], "z", None, [object()]):
        with pytest.raises(ValueError, match=r"^logits: expected"):
            sm.symbolic_softmax(bad)
