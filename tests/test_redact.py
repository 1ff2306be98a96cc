"""The one redaction step (llmops.redact), and an end-to-end hunt for planted keys in every output."""

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from fake_openai import FakeOpenAI
from pydantic import BaseModel, SecretStr

from llmops import Case, Prompt, Session, checks
from llmops.errors import ErrorBudgetExceeded
from llmops.models import resolve_model
from llmops.redact import REDACTED, get_logger, redact, register_secrets
from llmops.tracking.record import finish, new_record

# -- what is a secret ----------------------------------------------------------------------


def test_env_values_named_like_secrets_are_redacted_and_the_scan_follows_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "envkey-1a2b3c4d5e")
    monkeypatch.setenv("DB_PASSWORD", "pw-9z8y7x6w")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # shorter than 8: too common to replace
    monkeypatch.setenv("HOME_DIR_NAME", "envkey-not-a-secret")  # not named like a secret
    text = "got envkey-1a2b3c4d5e and pw-9z8y7x6w; false; envkey-not-a-secret"
    assert redact(text) == f"got {REDACTED} and {REDACTED}; false; envkey-not-a-secret"
    monkeypatch.delenv("DB_PASSWORD")
    assert redact("pw-9z8y7x6w") == "pw-9z8y7x6w"  # the cached scan noticed the change
    monkeypatch.setenv("NEW_SERVICE_TOKEN", "tok-5f6g7h8j9k")
    assert redact("tok-5f6g7h8j9k") == REDACTED


@pytest.mark.parametrize(
    "secret",
    [
        "sk-abcdefghijklmnopqrstuv",
        "sk-proj-Ab3_De6-Gh9Jk2Mn5Pq8St1",
        "sk-ant-api03-abcdefghijklmnop",
        "Bearer abcdefghijklmnopqrstuvwx",
        "bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        "github_pat_" + "11ABCDEFG0123456789_abcdefghijkl",
        "xoxb-123456789012-abcdefghij",
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    ],
)
def test_key_shapes_are_redacted(secret):
    assert redact(f"error: {secret} (401)") == f"error: {REDACTED} (401)"


def test_the_password_of_a_url_is_redacted_and_ordinary_text_is_not():
    assert redact("MLflow at https://bob:hunter2222@mlflow.example.com/ failed") == (
        f"MLflow at https://{REDACTED}@mlflow.example.com/ failed"
    )
    ordinary = (
        "task-management-system-design, asking, Bearer, AKIA, http://host:5000/path, "
        "ghp_short, mlflow.db, sqlite:////tmp/x.db, 0.95 at least"
    )
    assert redact(ordinary) is ordinary


class Creds(BaseModel):
    api_key: SecretStr
    endpoint: str = "https://example.com"


def test_secrets_held_by_a_model_object_are_registered_when_the_model_is_resolved(monkeypatch):
    from langchain_openai import ChatOpenAI

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    chat = ChatOpenAI(model="gpt-test", api_key="mdl-unit-7Qx2", base_url="http://127.0.0.1:9/v1")
    assert redact("mdl-unit-7Qx2") == "mdl-unit-7Qx2"  # not known yet
    resolve_model(chat.bind(stop=["END"]))  # a wrapper around the model: still found
    assert redact("Incorrect API key provided: mdl-unit-7Qx2.") == f"Incorrect API key provided: {REDACTED}."
    # a pydantic SecretStr and a key-named string in headers, anywhere a few levels down
    assert register_secrets({"creds": Creds(api_key=SecretStr("nested-secret-88")), "x-auth": "hdr-tok-123456"}) == 2
    assert redact("nested-secret-88 hdr-tok-123456 https://example.com") == f"{REDACTED} {REDACTED} https://example.com"


class Pair(NamedTuple):
    a: str
    b: int


@dataclasses.dataclass(frozen=True)
class Row:
    text: str
    parts: tuple[str, ...]
    pair: Pair
    extra: dict


def test_structures_keep_their_types_and_clean_data_is_not_copied(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "struct-key-42x")
    row = Row("x struct-key-42x", ("ok", "struct-key-42x"), Pair("struct-key-42x", 1), {"k": ["struct-key-42x"]})
    clean = redact(row)
    assert clean == Row(f"x {REDACTED}", ("ok", REDACTED), Pair(REDACTED, 1), {"k": [REDACTED]})
    assert type(clean.pair) is Pair and type(clean.parts) is tuple
    untouched = Row("x", ("ok",), Pair("a", 1), {"k": ["v"]})
    assert redact(untouched) is untouched
    rows = [{"output": "fine", "inputs": {"q": "2+2"}}] * 3
    assert redact(rows) is rows


def test_the_result_of_a_requirement_is_redacted_message_first_error_and_sample_rows(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "envkey-in-error-77")

    def model(text):
        raise PermissionError("Error code: 401 - Incorrect API key provided: envkey-in-error-77")

    run = Session(model=model, retries=0).sample(Prompt("p", "hi {x}"), [Case({"x": 1})])
    with pytest.raises(ErrorBudgetExceeded) as info:
        run.evaluate(checks.contains("hi"), at_least=0.5)
    result = info.value.result
    assert "envkey-in-error-77" not in str(info.value) and REDACTED in result.first_error
    assert "envkey-in-error-77" not in json.dumps(result.to_dict())
    assert any(REDACTED in (s.get("reason") or "") for s in result.samples)


def test_the_session_record_is_redacted_throughout(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_SECRET", "rec-secret-5566")
    record = finish(
        new_record({"tracking_uri": "http://u:rec-secret-5566@host", "model": "x"}),
        [{"verdict": "PASS", "message": "saw rec-secret-5566"}],
    )
    assert "rec-secret-5566" not in json.dumps(record)
    assert record["outcome"]["counts"] == {"PASS": 1, "FAIL": 0, "ERROR": 0}


def test_llmops_log_records_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv("LOG_TEST_TOKEN", "log-token-9988")
    caplog.set_level(logging.DEBUG)
    get_logger("llmops").warning("calling with %s", "log-token-9988")
    try:
        raise RuntimeError("failed with log-token-9988")
    except RuntimeError:
        get_logger("llmops.tracking").exception("upload failed: %s", "Bearer abcdefghijklmnopqrstuvwxyz")
    assert "log-token-9988" not in caplog.text and "abcdefghijklmnopqrstuvwxyz" not in caplog.text
    assert caplog.text.count(REDACTED) >= 3


# -- end to end: plant keys, run a real session, search every output -------------------------

ENV_KEY = "envkey-4Rt7Yq2Wz9Lm"  # in OPENAI_API_KEY
MODEL_KEY = "mdlkey-8Hn3Jc6Vb1Qx"  # only in the ChatOpenAI object
SHAPED = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # only in a model's answer
URL_PASSWORD = "urlpass-5Gk8Dm2Ns7"  # only in the tracking URI
PLANTED = (ENV_KEY, MODEL_KEY, SHAPED, URL_PASSWORD)

LEAKY_SUITE = f"""
import os
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

P = Prompt("greet", "Say hello to {{name}}")
CASES = [Case({{"name": n}}, id=n) for n in ("Ada", "Bob", "Cy")]


class AuthError(Exception):
    status_code = 401  # permanent: not retried


def chat(url, **kw):
    return ChatOpenAI(model="gpt-test", base_url=os.environ[url], max_retries=0, temperature=0.3, **kw)


def test_key_from_the_environment(llmops):  # the provider echoes OPENAI_API_KEY in its 401
    llmops.sample(P, CASES, model=chat("FAKE_DENY_URL")).expect(checks.contains("hello"), at_least=0.5)


def test_key_in_the_model_object(llmops):  # ... and the key given to ChatOpenAI
    model = chat("FAKE_DENY_URL", api_key="{MODEL_KEY}")
    llmops.sample(P, CASES, model=model).expect(checks.contains("hello"), at_least=0.5)


def test_env_key_in_a_plain_error(llmops):  # a key only the environment knows
    def model(text):
        raise AuthError("Incorrect API key provided: " + os.environ["OPENAI_API_KEY"])

    llmops.sample(P, CASES, model=model).expect(checks.contains("hello"), at_least=0.5)


def test_key_shaped_answer(llmops):
    model = chat("FAKE_OK_URL", api_key="{MODEL_KEY}")
    llmops.sample(P, CASES, model=model).expect(checks.contains("hello"), at_least=0.5)
"""


def run_inner(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--llmops-retries=0", *args],
        cwd=path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def report_options(project: Path) -> list[str]:
    """The report files this version of the plugin writes (other engineers add md and html)."""
    help_text = run_inner(project, "--help").stdout
    return [f"--llmops-report-{kind}=report.{kind}" for kind in ("json", "md", "html") if f"report-{kind}" in help_text]


def assert_clean(where: str, text: str) -> None:
    leaked = [key for key in PLANTED if key in text]
    assert not leaked, f"{leaked} leaked into {where}: ...{text[text.find(leaked[0]) - 300 :][:600]}"


def test_no_planted_key_reaches_any_output(tmp_path):
    from mlflow import MlflowClient

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_leaky.py").write_text(LEAKY_SUITE)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"OPENAI_API_KEY": ENV_KEY, "LLMOPS_TRACKING": "on"}
    logs = ["--log-file=log.txt", "--log-file-level=DEBUG", "--log-level=DEBUG", "-o", "junit_logging=all"]
    with (
        FakeOpenAI(behaviour="401") as deny,
        FakeOpenAI(reply=f"hello, my token is {SHAPED}") as ok,
    ):
        urls = {"FAKE_DENY_URL": deny.base_url, "FAKE_OK_URL": ok.base_url}
        env |= urls
        tracked = run_inner(
            project,
            f"--llmops-tracking-uri={uri}",
            "--junitxml=junit.xml",
            "-rA",
            *report_options(project),
            *logs,
            **env,
        )
        assert deny.requests > 0 and ok.requests > 0
        outputs = {"stdout": tracked.stdout, "stderr": tracked.stderr}
        assert "1 passed, 3 errors" in tracked.stdout, tracked.stdout[-3000:]
        # the provider's message did reach the terminal, redacted: the user still sees what went wrong
        assert f"Incorrect API key provided: {REDACTED}" in tracked.stdout

        dead = f"http://llmops:{URL_PASSWORD}@127.0.0.1:9"  # nothing listens on port 9
        spooled = run_inner(project, f"--llmops-tracking-uri={dead}", "--log-file=log2.txt", *logs[1:], **env)
        assert "results kept in" in spooled.stdout and f"http://{REDACTED}@127.0.0.1:9" in spooled.stdout
        outputs |= {"spool run stdout": spooled.stdout, "spool run stderr": spooled.stderr}

    files = [p for p in project.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    names = {p.name for p in files}
    assert {"junit.xml", "report.json", "log.txt", "log2.txt"} <= names and any(
        p.parent.name == "spool" for p in files
    ), names
    outputs |= {str(p.relative_to(project)): p.read_text(errors="replace") for p in files}
    # The response cache keeps the model's answers as they were (a replay must be exact): the
    # key-shaped text the model itself wrote may be there, no key of the user's may.
    cache = [where for where in outputs if where.startswith(".llmops/cache")]
    for where in cache:
        text = outputs.pop(where)
        assert not [key for key in PLANTED if key != SHAPED and key in text], where

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("llmops").experiment_id])
    artifacts = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts")))
    assert (artifacts / "llmops" / "results.json").exists() and (artifacts / "llmops" / "samples.json").exists()
    outputs |= {f"MLflow artifact {p.name}": p.read_text() for p in artifacts.rglob("*") if p.is_file()}
    outputs["MLflow params, tags, metrics, run name"] = json.dumps(
        [run.data.params, run.data.tags, list(run.data.metrics), run.info.run_name]
    )
    for where, text in outputs.items():
        assert_clean(where, text)
    # the redacted text is there (nothing was dropped), and the model's identity is logged without its key
    assert REDACTED in outputs["MLflow artifact samples.json"] and REDACTED in outputs["junit.xml"]
    assert run.data.params["model.ChatOpenAI:gpt-test.temperature"] == "0.3"
    deny_url, ok_url = urls["FAKE_DENY_URL"], urls["FAKE_OK_URL"]
    assert run.data.params["model.ChatOpenAI:gpt-test.openai_api_base"] in (deny_url, f"{deny_url}, {ok_url}")


def test_the_fake_openai_server_behaves_like_the_provider():
    import openai
    from langchain_openai import ChatOpenAI

    with FakeOpenAI(reply="hi there") as fake:
        chat = ChatOpenAI(model="gpt-test", api_key="sk-fake-behaviour-1", base_url=fake.base_url, max_retries=0)
        answer = chat.invoke("say hi")
        assert answer.content == "hi there" and answer.usage_metadata["output_tokens"] == 2
        fake.queue("401", "429", "500", "malformed")
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided: sk-fake-behaviour-1"):
            chat.invoke("x")
        with pytest.raises(openai.RateLimitError) as limited:
            chat.invoke("x")
        assert limited.value.response.headers["retry-after"] == "1"
        with pytest.raises(openai.InternalServerError):
            chat.invoke("x")
        with pytest.raises(ValueError):  # a body that is not JSON
            chat.invoke("x")
        assert chat.invoke("x").content == "hi there"  # the queue is used up: back to the behaviour
        assert fake.requests == 6 and fake.received[0][1]["messages"][0]["content"] == "say hi"
