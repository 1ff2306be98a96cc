"""`llmops promote | sync | history`: one-line errors, and a baseline promoted only when it should be.

Runs are logged in-process to a sqlite MLflow store from records of real (simulated) sessions;
the subprocess sessions of tests/test_tracking.py cover the pytest side.
"""

import json

import pytest
from mlflow import MlflowClient

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.baseline import load_baseline
from llmops.cli import main as cli
from llmops.tracking import quiet_mlflow
from llmops.tracking.mlflow_store import ALIAS_TAG, MlflowStore
from llmops.tracking.record import finish, new_record

V1 = "Ticket {n}: classify it"
V2 = "Ticket {n}: classify it, please"


def record(template: str = V1, rate: float = 0.97, **outcome):
    """The record of a finished one-test session (what pytest_sessionfinish hands to tracking)."""
    model = FunctionModel(lambda text, rng: '{"c": 1}' if rng.random() < rate else "no", id="sim")
    session = Session(model=model, test_id="test_x.py::test_triage")
    result = session.sample(Prompt("triage", template), [Case({"n": i}) for i in range(4)]).evaluate(
        checks.json_valid(), at_least=0.8
    )
    return finish(new_record({"model": "sim"}), [result.to_dict()], **{"exit_status": 0, **outcome})


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('cli')}/mlflow.db"


def log(uri: str, experiment: str, rec: dict) -> str:
    with quiet_mlflow():
        return MlflowStore(uri, experiment).log_session(rec)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # only what the command prints
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_promote_refuses_an_unknown_run_or_experiment_in_one_line(capsys, store_uri):
    run_a = log(store_uri, "cli-a", record())
    log(store_uri, "cli-b", record())

    code, _, err = run_cli(capsys, "promote", "deadbeef", "--tracking-uri", store_uri, "--experiment", "cli-a")
    assert code == 2 and "run deadbeef does not exist" in one_line(err) and "experiment 'cli-a'" in err

    code, _, err = run_cli(capsys, "promote", run_a, "--tracking-uri", store_uri, "--experiment", "nope")
    assert code == 2 and "experiment 'nope' does not exist" in one_line(err) and "--experiment" in err
    assert MlflowClient(store_uri).get_experiment_by_name("nope") is None  # not created on the way

    code, _, err = run_cli(capsys, "promote", run_a, "--tracking-uri", store_uri, "--experiment", "cli-b")
    assert code == 2 and f"run {run_a} is in experiment 'cli-a', not 'cli-b'" in one_line(err)

    code, _, err = run_cli(capsys, "promote", "deadbeef", "--tracking-uri", store_uri, "--debug")
    assert code == 2 and "Traceback" in err  # asked for


def test_promote_moves_the_registry_alias_and_the_experiment_tag_together(capsys, store_uri):
    first = log(store_uri, "step-a", record(V1))
    code, out, _ = run_cli(capsys, "promote", first, "--tracking-uri", store_uri, "--experiment", "step-a")
    assert code == 0 and "-> @baseline" in out

    def agree(experiment: str, template: str) -> None:
        registry = Prompt.load("prompts:/triage@baseline", tracking_uri=store_uri).version
        (entry,) = load_baseline("baseline", store_uri, experiment).entries.values()
        assert registry == entry.version == Prompt("triage", template).version

    agree("step-a", V1)
    second = log(store_uri, "step-a", record(V2))
    assert run_cli(capsys, "promote", second, "--tracking-uri", store_uri, "--experiment", "step-a")[0] == 0
    agree("step-a", V2)

    # Another experiment may not silently take the registry alias (shared by all experiments).
    other = log(store_uri, "step-b", record(V1))
    code, _, err = run_cli(capsys, "promote", other, "--tracking-uri", store_uri, "--experiment", "step-b")
    line = one_line(err)
    assert code == 2 and "prompts:/triage@baseline is the baseline of experiment 'step-a'" in line and "--alias" in line
    agree("step-a", V2)
    assert ALIAS_TAG + "baseline" not in MlflowClient(store_uri).get_experiment_by_name("step-b").tags
    code, out, _ = run_cli(capsys, "promote", other, "--tracking-uri", store_uri, "--experiment", "step-b", "--force")
    assert code == 0 and out.startswith("warning: promoting anyway (--force)")
    agree("step-b", V1)


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ({"rate": 0.3}, "1 requirement(s) FAILED"),
        ({"partial": "stopping after 1 failures", "exit_status": 2}, "the session was partial (stopping after 1"),
        ({"exit_status": 1}, "pytest exited with status 1 (some tests failed)"),
    ],
)
def test_promote_of_a_failed_or_partial_session_needs_force(capsys, store_uri, outcome, words):
    experiment = f"failed-{abs(hash(words))}"
    rate = outcome.pop("rate", 0.97)
    run = log(store_uri, experiment, record(V1, rate, **outcome))
    code, _, err = run_cli(capsys, "promote", run, "--tracking-uri", store_uri, "--experiment", experiment)
    line = one_line(err)
    assert code == 2 and f"run {run} is no clean baseline: " in line and words in line and "--force" in line
    assert ALIAS_TAG + "baseline" not in MlflowClient(store_uri).get_experiment_by_name(experiment).tags

    code, out, _ = run_cli(
        capsys, "promote", run, "--tracking-uri", store_uri, "--experiment", experiment, "--alias", "x", "--force"
    )
    assert code == 0 and words in out.splitlines()[0] and out.startswith("warning:")
    assert MlflowClient(store_uri).get_experiment_by_name(experiment).tags[ALIAS_TAG + "x"] == run


def test_history_against_an_unreachable_server_says_so(capsys):
    code, _, err = run_cli(capsys, "history", "triage", "--tracking-uri", "http://127.0.0.1:9")
    line = one_line(err)
    assert code == 2 and "http://127.0.0.1:9 is unreachable" in line and "llmops sync" not in line


def test_history_of_an_unknown_experiment_does_not_create_it(capsys, store_uri):
    code, _, err = run_cli(capsys, "history", "triage", "--tracking-uri", store_uri, "--experiment", "ghost")
    assert code == 2 and "experiment 'ghost' does not exist" in one_line(err)
    assert MlflowClient(store_uri).get_experiment_by_name("ghost") is None


def test_sync_names_a_spool_file_that_is_not_a_record(capsys, store_uri, tmp_path):
    (tmp_path / "0-broken.json").write_text("{not json")
    (tmp_path / "1-good.json").write_text(json.dumps(record()))
    code, _, err = run_cli(capsys, "sync", "--tracking-uri", store_uri, "--spool-dir", str(tmp_path))
    line = one_line(err)
    assert code == 2 and "0-broken.json is not a session record" in line and "move it out of" in line
