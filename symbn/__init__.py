"""symbn: gradients of normalization layers, derived symbolically, proven, and printed as code.

>>> import symbn
>>> d = symbn.derive(symbn.LayerSpec(), m=None)
>>> d.closed["x"]
gamma*r*(m*g(i) - xhat(i)*Sum(g(j)*xhat(j), (j, 1, m)) - Sum(g(j), (j, 1, m)))/m
"""

from symbn.api import Condition, Derivation, ProofReport, derive, prove
from symbn.checker import CheckReport, check_backward
from symbn.errors import OptionError, ProofError, SymbnError
from symbn.spec import LayerSpec, all_variants

__version__ = "0.1.0"

__all__ = [
    "CheckReport",
    "Condition",
    "Derivation",
    "LayerSpec",
    "OptionError",
    "ProofError",
    "ProofReport",
    "SymbnError",
    "__version__",
    "all_variants",
    "check_backward",
    "derive",
    "prove",
]
