"""Auto-checks for the book's exercises: ``focaledu.checks.<name>(your_function)``.

Each check returns a ``CheckResult`` (truthy when it passed) whose message says
what is wrong, not just pass/fail. See ``focaledu.checks._core.compare``.
"""

from focaledu.checks._core import CheckResult, compare

__all__ = ["CheckResult", "compare"]
