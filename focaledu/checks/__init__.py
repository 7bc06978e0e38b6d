"""Auto-checks for the book's exercises: ``focaledu.checks.<name>(your_function)``.

Each returns a ``CheckResult`` whose message explains a failure.
"""

from focaledu.checks import ablations, architecture, attention, cost, interpretation, modulation, training
from focaledu.checks._core import CheckResult, compare
from focaledu.checks.ablations import *  # noqa: F401,F403
from focaledu.checks.architecture import *  # noqa: F401,F403
from focaledu.checks.attention import *  # noqa: F401,F403
from focaledu.checks.cost import *  # noqa: F401,F403
from focaledu.checks.interpretation import *  # noqa: F401,F403
from focaledu.checks.modulation import *  # noqa: F401,F403
from focaledu.checks.training import *  # noqa: F401,F403

# Every check, by name, whichever chapter's module defines it.
__all__ = ["CheckResult", "compare"] + [
    name for module in (ablations, architecture, attention, cost, interpretation, modulation, training)
    for name in module.__all__
]
