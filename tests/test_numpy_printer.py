import numpy as np
import pytest
import sympy as sp

import symbn
from symbn import symbols as S
from symbn.errors import OptionError
from symbn.evaluate import evaluate
from symbn.numpy_printer import numpy_code

g, x, xs, xhat = (S.element_function(n) for n in ("g", "x", "xs", "xhat"))
ARRAYS = {"g": "dy", "x": "x", "xs": "xs", "xhat": "xhat"}


def total(body):
    return sp.Sum(body, (S.j, 1, S.m))


def test_sum_of_an_element_is_one_keepdims_reduction_in_float64():
    """A sum over j prints as np.sum over the reduced axes, kept broadcastable, in float64."""
    assert numpy_code(total(g(S.j)), ARRAYS) == \
        "np.sum(dy, axis=axes, keepdims=True, dtype=np.float64)"


def test_accumulate_and_axes_names_are_settings():
    """The axes variable and the accumulation dtype come from the settings."""
    code = numpy_code(total(x(S.j)), ARRAYS, axes="red", accumulate="")
    assert code == "np.sum(x, axis=red, keepdims=True)"


def test_unknown_element_function_is_an_error_not_a_loop():
    """An element function without a named array raises, naming it and the known ones."""
    with pytest.raises(OptionError, match=r"'y'.*known"):
        numpy_code(total(S.element_function("y")(S.j)), ARRAYS)


def test_sum_with_other_limits_is_rejected():
    """Only sums over (j, 1, m) are batch reductions."""
    with pytest.raises(OptionError, match="limits"):
        numpy_code(sp.Sum(g(S.j), (S.j, 0, S.m)), ARRAYS)


def test_powers_and_piecewise_print_as_numpy():
    """1/b instead of b**(-1.0), numpy names as np.*, a two-branch Piecewise as np.where."""
    assert numpy_code(1 / (S.eps + S.sigma), ARRAYS) == "1/(eps + sigma)"
    assert numpy_code(sp.sqrt(S.var), ARRAYS) == "np.sqrt(var)"
    where = numpy_code(sp.Piecewise((S.r, S.sigma > 0), (1 / S.eps, True)), ARRAYS)
    assert where == "np.where(sigma > 0, r, 1/eps)"


@pytest.mark.parametrize("spec", symbn.all_variants()[:8], ids=lambda s: s.describe())
def test_closed_forms_print_without_python_loops(spec):
    """Every training-mode closed form prints as vectorized NumPy: no builtins.sum, no for."""
    d = symbn.derive(spec)
    for w in d.wrt:
        code = numpy_code(d.closed_symbolic[w], ARRAYS)
        assert "builtins" not in code and " for " not in code
        assert code.count("np.sum(") == str(d.closed_symbolic[w]).count("Sum(")


def test_printed_closed_form_evaluates_like_mpmath():
    """The printed default closed form, run with NumPy, equals symbn.evaluate on the same data."""
    d = symbn.derive(symbn.LayerSpec())
    rng = np.random.default_rng(3)
    m = 6
    dy, xh = rng.standard_normal((m, 1)), rng.standard_normal((m, 1))
    scalars = {"gamma": 1.3, "r": 0.7}
    code = numpy_code(d.closed_symbolic["x"], ARRAYS)
    got = eval(code, {"np": np}, {"dy": dy, "xhat": xh, "axes": (0,), "m": m, **scalars})
    want = evaluate(d.closed_symbolic["x"], {"g": dy[:, 0], "xhat": xh[:, 0]}, scalars)
    np.testing.assert_allclose(got[:, 0], [float(v) for v in want], rtol=1e-13, atol=1e-14)
