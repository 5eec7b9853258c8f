"""Which wrong batch-norm backwards torch.autograd.gradcheck (at its defaults) catches, and symbn.

Each backward of tests/test_checker.py (7 classic wrong ones, 3 right ones, plus a right one
scaled by 1 + 1e-6) is wrapped with a float64 torch forward in an autograd.Function and given
to ``torch.autograd.gradcheck`` with its defaults (eps=1e-6, atol=1e-5, rtol=1e-3) on an
(8, 4) input, once with γ = 1 (PyTorch's initialization) and once with random γ ≠ 1. symbn's
column is ``symbn.check_backward`` with its own inputs (float64). Only runs where torch is
installed (optional extra: pip install -e '.[torch]').

Run: python bench/gradcheck_compare.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError:
    print("torch is not installed: nothing to compare (pip install -e '.[torch]')")
    sys.exit(0)

from symbn.checker import check_backward

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_checker import RIGHT, WRONG, compact

EPS = 1e-5


def scaled(dy, x, gamma, *, eps, axis):
    dx, dgamma, dbeta = compact(dy, x, gamma, eps=eps, axis=axis)
    return dx * (1 + 1e-6), dgamma, dbeta


def as_function(backward: Callable[..., tuple[np.ndarray, ...]]) -> Callable[..., torch.Tensor]:
    class BatchNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta):
            ctx.save_for_backward(x, gamma)
            mu = x.mean(0)
            var = ((x - mu) ** 2).mean(0)
            return gamma * (x - mu) / torch.sqrt(var + EPS) + beta

        @staticmethod
        def backward(ctx, dy):
            x, gamma = ctx.saved_tensors
            dx, dgamma, dbeta = backward(dy.detach().numpy(), x.detach().numpy(),
                                         gamma.detach().numpy(), eps=EPS, axis=-1)
            return (torch.from_numpy(np.ascontiguousarray(dx)),
                    torch.from_numpy(np.ascontiguousarray(dgamma)),
                    torch.from_numpy(np.ascontiguousarray(dbeta)))

    return BatchNorm.apply


def gradcheck_catches(backward: Callable[..., tuple[np.ndarray, ...]], gamma_one: bool) -> bool:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    gamma = (torch.ones(4, dtype=torch.float64) if gamma_one else
             torch.rand(4, dtype=torch.float64, generator=gen) * 1.5 + 0.5).requires_grad_()
    beta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    try:
        return not torch.autograd.gradcheck(as_function(backward), (x, gamma, beta),
                                            raise_exception=False)
    except Exception:  # a crash inside the backward counts as caught
        return True


def main() -> None:
    rows = [(name, fn, False) for name, fn in WRONG.items()]
    rows.append(("right, scaled by 1 + 1e-6", scaled, False))
    rows += [(f"right: {name}", fn, True) for name, fn in RIGHT.items()]
    print(f"torch {torch.__version__}; gradcheck defaults: eps=1e-6, atol=1e-5, rtol=1e-3; "
          "(8, 4) float64 input")
    head = f"{'backward':<40}{'gradcheck γ=1':>15}{'gradcheck γ≠1':>15}{'symbn check':>13}"
    print(head)
    print("-" * len(head))
    caught = {"g1": 0, "g": 0, "s": 0}
    wrong_rows = 0
    for name, fn, right in rows:
        g1, g = gradcheck_catches(fn, True), gradcheck_catches(fn, False)
        s = not check_backward(fn).passed

        def mark(hit: bool, right: bool = right) -> str:
            if right:
                return "false alarm" if hit else "passes"
            return "caught" if hit else "MISSED"
        print(f"{name:<40}{mark(g1):>15}{mark(g):>15}{mark(s):>13}")
        if not right:
            wrong_rows += 1
            caught["g1"] += g1
            caught["g"] += g
            caught["s"] += s
    print("-" * len(head))
    label = "wrong ones caught (7 classic + scaled)"
    print(f"{label:<40}{caught['g1']:>13}/{wrong_rows}{caught['g']:>13}/{wrong_rows}"
          f"{caught['s']:>11}/{wrong_rows}")


if __name__ == "__main__":
    main()
