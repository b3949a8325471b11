"""The example controllers, as installed (``pod-logger`` and friends run from here).

In the wheel this package *is* the repository's ``examples/`` folder (hatch maps it here,
so no top-level ``examples`` package is installed). In a checkout this file stands in for
it and points the package's search path at ``examples/``.
"""

from pathlib import Path

_CHECKOUT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if (_CHECKOUT_EXAMPLES / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT_EXAMPLES))
