"""Compare a learner's function with the reference and name the typical mistake its output matches."""

from dataclasses import dataclass

import numpy as np


@dataclass
class CheckResult:
    """The outcome of an exercise check; truthy when it passed."""

    name: str
    passed: bool
    message: str

    def __bool__(self):
        return self.passed

    def __str__(self):
        mark = "PASSED" if self.passed else "NOT YET"
        return f"[{mark}] {self.name}: {self.message}"

    __repr__ = __str__

    def _repr_markdown_(self):
        mark = "✅ **Passed**" if self.passed else "❌ **Not yet**"
        return f"{mark} ({self.name}): {self.message}"


def unanswered(name, *predictions):
    """A "not yet" result when a prediction still holds the exercise's ``...`` (or None), else None."""
    def blank(value):
        if value is Ellipsis or value is None:
            return True
        if isinstance(value, dict):
            return any(blank(v) for v in value.values())
        return isinstance(value, (list, tuple)) and any(blank(v) for v in value)

    if any(blank(p) for p in predictions):
        return CheckResult(name, False, "not implemented yet. Hint: replace each `...` (or None) with your prediction.")
    return None


def _numpy(value):
    if isinstance(value, (tuple, list)):
        return [_numpy(v) for v in value]
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")
    except Exception:  # plain Python numbers and NumPy arrays
        return np.asarray(value, dtype="float64")


def _close(a, b, atol, rtol):
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
            and all(_close(x, y, atol, rtol) for x, y in zip(a, b))
        )
    return a.shape == b.shape and np.allclose(a, b, atol=atol, rtol=rtol)


def compare(name, learner, reference, cases, mistakes=(), atol=1e-5, rtol=1e-4):
    """Checks ``learner(*args) == reference(*args)`` for every ``(label, args)`` in ``cases``.

    Args:
        name: the exercise, shown in the result.
        learner: the learner's function.
        reference: the correct function, with the same signature.
        cases: ``[(label, args_tuple), ...]``; the label describes the input.
        mistakes: ``[(message, wrong_function), ...]``: typical errors to recognise.
        atol, rtol: tolerances for ``np.allclose``.

    Returns:
        A ``CheckResult`` whose message says what differs.
    """
    if not callable(learner):
        return CheckResult(name, False, f"expected a function, got {type(learner).__name__}.")
    for label, args in cases:
        try:
            got = _numpy(learner(*args))
        except NotImplementedError as error:
            hint = f" Hint: {error}" if str(error) else ""
            return CheckResult(name, False, f"not implemented yet.{hint}")
        except Exception as error:  # the learner's bug, reported rather than raised
            return CheckResult(name, False, f"raised {type(error).__name__}: {error} (input: {label}).")
        expected = _numpy(reference(*args))
        if _close(got, expected, atol, rtol):
            continue
        for message, wrong in mistakes:
            if _close(got, _numpy(wrong(*args)), atol, rtol):
                return CheckResult(name, False, f"{message} (input: {label}).")
        if isinstance(got, list) or isinstance(expected, list):
            return CheckResult(name, False, f"returned a different structure or values than expected (input: {label}).")
        if got.shape != expected.shape:
            return CheckResult(
                name, False, f"returned shape {got.shape}, expected {expected.shape} (input: {label})."
            )
        error = np.abs(got - expected)
        where = np.unravel_index(np.argmax(error), error.shape)
        return CheckResult(
            name,
            False,
            f"values differ (input: {label}): max abs error {error.max():.3g} at index "
            f"{tuple(int(i) for i in where)}, where you returned {got[where]:.4g} and the "
            f"reference {expected[where]:.4g}.",
        )
    return CheckResult(name, True, f"matches the reference on {len(cases)} inputs.")
