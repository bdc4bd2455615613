"""gradynamics: the shared library of *Gradient Dynamics, Derived and Verified*.

Cross-cutting modules:

- :mod:`gradynamics.runtime`   -- device, dtype and seeding helpers (float64 by default);
- :mod:`gradynamics.validation` -- argument checks that raise ``ValueError`` naming the argument;
- :mod:`gradynamics.verify`    -- sympy zero-checks, closed form vs autograd / finite differences;
- :mod:`gradynamics.ledger`    -- the claims ledger every chapter fills and renders at its end;
- :mod:`gradynamics.plotting`  -- one matplotlib style for every figure;
- :mod:`gradynamics.softmax`   -- softmax, its Jacobian, categorical Fisher information.

Topic modules (one per chapter topic) sit beside them.
"""

from gradynamics.ledger import ClaimsLedger
from gradynamics.runtime import DEFAULT_DTYPE, describe_runtime, get_device, seed_everything
from gradynamics.verify import (
    ErrorReport,
    assert_sympy_zero,
    cancel_exponentials,
    compare,
    finite_difference_gradient,
    finite_difference_jacobian,
)

__all__ = [
    "ClaimsLedger",
    "DEFAULT_DTYPE",
    "ErrorReport",
    "assert_sympy_zero",
    "cancel_exponentials",
    "compare",
    "describe_runtime",
    "finite_difference_gradient",
    "finite_difference_jacobian",
    "get_device",
    "seed_everything",
]

__version__ = "0.1.0"
