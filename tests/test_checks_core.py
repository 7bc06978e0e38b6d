"""The exercise-check machinery: pass, shape errors, recognised mistakes, stubs."""

import numpy as np

from focaledu.checks import compare

CASES = [("a 3x4 matrix", (np.arange(12.0).reshape(3, 4),))]


def softmax_rows(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cols(x):
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


MISTAKES = [("you normalised over the wrong axis: each row must sum to 1", softmax_cols)]


def test_pass():
    result = compare("softmax", softmax_rows, softmax_rows, CASES, MISTAKES)
    assert result and "matches the reference on 1 inputs" in result.message


def test_recognised_mistake_is_named():
    result = compare("softmax", softmax_cols, softmax_rows, CASES, MISTAKES)
    assert not result and "wrong axis" in result.message and "a 3x4 matrix" in result.message


def test_shape_and_value_differences_are_described():
    result = compare("softmax", lambda x: softmax_rows(x)[0], softmax_rows, CASES, MISTAKES)
    assert not result and "shape (4,), expected (3, 4)" in result.message
    bump = np.zeros((3, 4))
    bump[2, 3] = 0.5
    result = compare("softmax", lambda x: softmax_rows(x) + bump, softmax_rows, CASES)
    assert not result and "max abs error 0.5 at index (2, 3)" in result.message


def test_stub_and_exception_are_reported_not_raised():
    def stub(x):
        raise NotImplementedError("subtract the row maximum before exp")

    result = compare("softmax", stub, softmax_rows, CASES)
    assert not result and "not implemented yet" in result.message and "row maximum" in result.message
    result = compare("softmax", lambda x: x @ x, softmax_rows, CASES)
    assert not result and "raised ValueError" in result.message
