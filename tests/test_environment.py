"""The test environment itself: Keras runs on the backend `make test` asked for."""

import os

import pytest


@pytest.mark.backends
def test_keras_uses_requested_backend():
    requested = os.environ.get("KERAS_BACKEND")
    if not requested:
        pytest.skip("KERAS_BACKEND is not set")
    import keras

    assert keras.backend.backend() == requested
