import random

import pytest

from llmops import FunctionModel


def bernoulli_model(p: float, good: str = '{"ok": true}', bad: str = "not json") -> FunctionModel:
    """A seeded simulated model whose outputs are `good` with probability p."""
    return FunctionModel(lambda text, rng: good if rng.random() < p else bad, id=f"bernoulli:{p}")


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
