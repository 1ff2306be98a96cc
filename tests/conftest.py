import importlib
import importlib.util
import os
import random

# In-process pytester runs drop modules first imported inside them; numpy cannot be loaded
# twice in one process, so import the heavy parts once here, before any pytester run.
import langchain_core.messages  # noqa: F401
import langchain_openai  # noqa: F401
import pytest

import llmops.report.terminal
import llmops.session  # noqa: F401
from llmops import FunctionModel

# The same for the OpenAI client's transport, which it imports on its first connection: a
# class imported twice is two classes, and after a pytester run that connected first, a
# dropped connection surfaced as the transport's own ReadError, not the client's error.
for _transport in ("httpcore2", "httpcore"):
    if importlib.util.find_spec(_transport) is not None:
        importlib.import_module(_transport)


def bernoulli_model(p: float, good: str = '{"ok": true}', bad: str = "not json") -> FunctionModel:
    """A seeded simulated model whose outputs are `good` with probability p."""
    return FunctionModel(lambda text, rng: good if rng.random() < p else bad, id=f"bernoulli:{p}")


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


# Sequential designs are cached on disk; the project's tests keep theirs out of ~/.cache.
if "LLMOPS_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["LLMOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="llmops-test-cache-")

# The project's own plugin tests run inner pytest sessions; they track only when a test
# asks for it (tests/test_tracking.py), so they never write to the developer's MLflow store.
os.environ.setdefault("LLMOPS_TRACKING", "off")


@pytest.fixture
def quick_backoff(monkeypatch):
    """Backoff of milliseconds, so the fault tests stay short (Retry-After still counts, up to 2 s)."""
    import llmops.sampling

    monkeypatch.setattr(llmops.sampling, "BACKOFF_BASE_S", 0.005)
    monkeypatch.setattr(llmops.sampling, "BACKOFF_MAX_S", 2.0)
