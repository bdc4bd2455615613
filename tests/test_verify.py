import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradynamics as gd

x, y = sp.symbols("x y", real=True)


def test_assert_sympy_zero_accepts_identities():
    assert gd.assert_sympy_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1) == 0
    gd.assert_sympy_zero(sp.Matrix([[x - x, 0], [sp.exp(x) * sp.exp(-x) - 1, 0]]))


def test_assert_sympy_zero_shows_residual():
    with pytest.raises(AssertionError, match=r"my identity.*residual = 2\*x"):
        gd.assert_sympy_zero(2 * x, "my identity")


def test_assert_sympy_zero_rejects_non_sympy():
    with pytest.raises(ValueError, match="expr"):
        gd.assert_sympy_zero(0.0)
    with pytest.raises(ValueError, match="simplifier"):
        gd.assert_sympy_zero(x - x, simplifier="simplify")


def test_cancel_exponentials_decides_softmax_identities():
    z1, z2 = sp.symbols("z1 z2", real=True)
    s = sp.exp(z1) + sp.exp(z2)
    p1 = sp.exp(z1) / s
    ok = sp.diff(p1, z1) - (p1 - p1**2)
    gd.assert_sympy_zero(ok, simplifier=gd.cancel_exponentials)
    with pytest.raises(AssertionError):
        gd.assert_sympy_zero(ok + p1 / 10, simplifier=gd.cancel_exponentials)
    with pytest.raises(ValueError, match="expr"):
        gd.cancel_exponentials(3)


def test_compare_reports_abs_and_rel_error():
    report = gd.compare(torch.tensor([1.0, 2.0, 4.1], dtype=torch.float64),
                        torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    assert math.isclose(report.max_abs, 0.1, rel_tol=1e-9)
    assert math.isclose(report.max_rel, 0.1 / 4.0, rel_tol=1e-9)
    assert report.size == 3
    report.assert_below(abs_tol=0.2, rel_tol=0.05)
    with pytest.raises(AssertionError, match="max abs error"):
        report.assert_below(abs_tol=0.01)
    with pytest.raises(AssertionError, match="max rel error"):
        report.assert_below(rel_tol=0.01)
    with pytest.raises(ValueError, match="tolerance"):
        report.assert_below()


def test_compare_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        gd.compare(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="actual"):
        gd.compare(torch.tensor([float("nan")]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="expected"):
        gd.compare(torch.tensor([0.0]), torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match="actual"):
        gd.compare("abc", torch.tensor([0.0]))
    with pytest.raises(ValueError, match="empty"):
        gd.compare(torch.zeros(0), torch.zeros(0))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=10_000))
def test_finite_difference_gradient_matches_autograd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, dtype=torch.float64, generator=gen)
    v = torch.randn(n, dtype=torch.float64, generator=gen)

    def func(w):
        return torch.sin(w) @ a @ torch.tanh(w) + (w**3).sum()

    auto = torch.func.grad(func)(v)
    gd.compare(gd.finite_difference_gradient(func, v), auto).assert_below(abs_tol=1e-7)


def test_finite_difference_jacobian_shape_and_value():
    v = torch.randn(2, 3, dtype=torch.float64)
    jac = gd.finite_difference_jacobian(lambda w: w.sum(dim=0) ** 2, v)
    assert jac.shape == (3, 2, 3)
    auto = torch.autograd.functional.jacobian(lambda w: w.sum(dim=0) ** 2, v)
    gd.compare(jac, auto).assert_below(abs_tol=1e-8)


def test_finite_differences_reject_bad_input():
    v = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^func: "):
        gd.finite_difference_gradient(None, v)
    with pytest.raises(ValueError, match=r"^eps: "):
        gd.finite_difference_gradient(lambda w: w.sum(), v, eps=0.0)
    with pytest.raises(ValueError, match=r"^x: "):
        gd.finite_difference_gradient(lambda w: w.sum(), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match=r"^x: "):
        gd.finite_difference_jacobian(lambda w: w, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="scalar"):
        gd.finite_difference_gradient(lambda w: w, v)
