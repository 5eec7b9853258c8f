"""Speed of symbn's derivations and proofs (issue: core), printed as a table.

    python bench/bench_derive.py            # everything, ~1 minute
    python bench/bench_derive.py --naive-max 16

Rows:
1. symbolic m: derivation + closed form + proof for each of the 16 batch-norm variants
   (target: under 5 s in total);
2. concrete m = 1..32, default variant: derivation + proof that the symbolic closed form,
   instantiated, equals the explicit chain-rule derivative (target: under 60 s in total);
3. for comparison, the naive route (μ and σ² expanded into the elements, then sympy.diff and
   a symbolic comparison) for a few m: it grows like m^3.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symbn
from symbn.spec import LayerSpec, all_variants
from tests.naive import naive_gradients


def symbolic_all() -> tuple[float, bool]:
    start = time.perf_counter()
    ok = all(symbn.prove(symbn.derive(spec)).holds for spec in all_variants())
    return time.perf_counter() - start, ok


def concrete(m: int) -> tuple[float, bool]:
    start = time.perf_counter()
    ok = symbn.prove(symbn.derive(LayerSpec(), m)).holds
    return time.perf_counter() - start, ok


def naive(m: int) -> float:
    """Expanded forward pass, sympy.diff for every element (the derivative only)."""
    start = time.perf_counter()
    naive_gradients(LayerSpec(), m)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-max", type=int, default=12,
                        help="largest m for the naive route (default 12; 32 takes minutes)")
    parser.add_argument("--m-max", type=int, default=32)
    args = parser.parse_args()

    t_sym, ok_sym = symbolic_all()
    per_m = {}
    for m in range(1, args.m_max + 1):
        per_m[m] = concrete(m)
    t_conc = sum(t for t, _ in per_m.values())
    ok_conc = all(ok for _, ok in per_m.values())

    print("| what | time (s) | target (s) | all proofs hold |")
    print("|---|---:|---:|---|")
    print(f"| symbolic m, 16 variants: derive + closed form + proof | {t_sym:.2f} | 5 | {ok_sym} |")
    print(f"| concrete m = 1..{args.m_max}, default variant: derive + proofs | {t_conc:.2f} | 60 |"
          f" {ok_conc} |")
    print()
    print("| m | symbn: derive + proofs (s) | naive expand + sympy.diff, derivative only (s) |"
          " naive / symbn |")
    print("|---:|---:|---:|---:|")
    for m in (4, 8, 12, 16, 24, 32):
        if m > args.m_max:
            continue
        ours = per_m[m][0]
        if m <= args.naive_max:
            t_naive = naive(m)
            print(f"| {m} | {ours:.2f} | {t_naive:.2f} | {t_naive / ours:.1f} |")
        else:
            print(f"| {m} | {ours:.2f} | (skipped: --naive-max {args.naive_max}) | |")
    sp.core.cache.clear_cache()


if __name__ == "__main__":
    main()
