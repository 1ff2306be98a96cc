"""MLflow tracking, the prompt registry, the spool and the baseline gate, with real MLflow.

Inner pytest sessions run in subprocesses (MLflow and numpy cannot be re-imported in one
process); a real `mlflow server` with a sqlite backend is started on 127.0.0.1.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.cli import main as cli
from llmops.redact import REDACTED, redact
from llmops.tracking import spool
from llmops.tracking.mlflow_store import (
    ALIAS_TAG,
    COMPLETE_TAG,
    SESSION_TAG,
    MlflowStore,
    from_mlflow_template,
    model_params,
    to_mlflow_template,
)
from llmops.tracking.record import finish, new_record, run_name

INNER_CONFTEST = """
import os
import pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    drop = float(os.environ.get("INNER_DROP", "0"))
    leak = os.environ.get("INNER_LEAK", "")
    def model(text, rng):
        case = int(text.split("#")[1].split(":")[0])
        rate = (0.95 if case % 2 else 0.75) - (drop if "quickly" in text else 0.0)
        return '{"category": "billing", "note": "%s"}' % leak if rng.random() < rate else "sorry"
    return FunctionModel(model)
"""

INNER_TEST = """
import os
from llmops import Case, Prompt, checks

P = Prompt("triage", os.environ.get("INNER_PROMPT", "Ticket #{n}: classify it"))
CASES = [Case({"n": i}, id=f"t{i}") for i in range(int(os.environ.get("INNER_N", "16")))]

def test_triage(llmops):
    run = llmops.sample(P, CASES)
    run.expect(checks.json_valid(), at_least=0.8)
    run.expect(checks.pii(), at_most=0.05)
"""


class Outcome:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.ret = proc.returncode
        self.text = proc.stdout + proc.stderr
        self.stdout = pytest.LineMatcher(proc.stdout.splitlines())

    def assert_outcomes(self, passed: int) -> None:
        assert f"{passed} passed" in self.text.splitlines()[-1], self.text[-2000:]


class Project:
    """A user's project in a temp dir; pytest runs in a subprocess, as a user would run it.

    (Not pytester: it drops modules imported during a test, and MLflow's SQLAlchemy models
    break when imported twice in one process.)
    """

    def __init__(self, path: Path):
        self.path = path
        (path / "conftest.py").write_text(INNER_CONFTEST)
        (path / "test_inner.py").write_text(INNER_TEST)

    def makepyfile(self, **files: str) -> None:
        for name, text in files.items():
            (self.path / f"{name}.py").write_text(text)

    def run(self, *args: str, **env: str) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--llmops-tracking=on", *args],
            cwd=self.path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        return Outcome(proc)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


def inner(project, *args, **env):
    return project.run(*args, **env)


def runs(client, experiment="llmops"):
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id])) if exp else []


def first_run(client, experiment="llmops"):
    return min(runs(client, experiment), key=lambda r: r.info.start_time).info.run_id


# -- units ---------------------------------------------------------------------------------


def test_redaction_of_env_secrets_and_key_shapes(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890abcdef")
    text = "key sk-abcdefghijklmnopqrstuv and tok-1234567890abcdef and Bearer abcdefghijklmnopqrstuvwx"
    assert redact({"a": [text]}) == {"a": [f"key {REDACTED} and {REDACTED} and {REDACTED}"]}


def test_runs_are_named_by_pull_request_or_branch_and_commit():
    sha = "1a2b3c4d5e6f7a8b9c0d"
    assert run_name({"pull_request": "12", "branch": "feature", "commit": sha}) == "pr-12@1a2b3c4"
    assert run_name({"branch": "main", "commit": sha}) == "main@1a2b3c4"
    assert run_name({}, "9f8e7d6c5b4a") == "session@9f8e7d6"


def test_each_models_identifying_settings_become_params():
    settings = {
        "id": "ChatOpenAI:gpt-test",
        "class": "ChatOpenAI",
        "temperature": 0.3,
        "openai_api_base": "http://h/v1",
    }
    results = [
        {"model": "ChatOpenAI:gpt-test", "model_settings": settings},
        {"model": "ChatOpenAI:gpt-test", "model_settings": {**settings, "temperature": 0.7}},
        {"model": "function:f", "model_settings": None},
    ]
    assert model_params(results) == {
        "model.ChatOpenAI:gpt-test.class": "ChatOpenAI",
        "model.ChatOpenAI:gpt-test.temperature": "0.3, 0.7",
        "model.ChatOpenAI:gpt-test.openai_api_base": "http://h/v1",
    }


def test_mlflow_says_nothing_on_the_terminal_while_llmops_logs(tmp_path, capfd):
    from llmops.tracking import quiet_mlflow

    with quiet_mlflow():
        MlflowStore(f"sqlite:///{tmp_path}/fresh.db", "quiet").log_session(session_record())
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # MLflow prints INFO lines when it creates a store's tables


def session_record(template: str = "Ticket #{n}: classify it") -> dict:
    """A finished record of a one-requirement session, as the plugin builds it."""
    model = FunctionModel(lambda text, rng: '{"category": "billing"}' if rng.random() < 0.95 else "no", id="sim")
    run = Session(model=model, test_id="test_inner.py::test_triage").sample(
        Prompt("triage", template), [Case({"n": i}) for i in range(4)]
    )
    return finish(new_record({}), [run.evaluate(checks.json_valid(), at_least=0.8).to_dict()], exit_status=0)


def test_templates_round_trip_through_mlflow_syntax():
    parts = [("system", "Be {tone} {{not a var}}."), ("human", "Q: {q}")]
    mlflow_form = to_mlflow_template(parts)
    assert mlflow_form[0]["content"] == "Be {{tone}} {not a var}." and mlflow_form[1]["role"] == "user"
    assert from_mlflow_template(mlflow_form) == parts
    assert (
        Prompt.from_parts("p", from_mlflow_template(to_mlflow_template([("human", "{x}!")]))).version
        == Prompt("p", "{x}!").version
    )


# -- local store ---------------------------------------------------------------------------


def test_two_and_four_xdist_workers_give_the_same_verdicts_and_one_mlflow_run(project, tmp_path):
    """Seeded samples do not depend on which worker draws them: the same k, n and verdict for every
    requirement with 0, 2 and 4 workers, and each session is one MLflow run holding all of them."""
    for i in range(3):
        text = INNER_TEST.replace("test_triage", f"test_triage_{i}").replace("classify it", f"classify it ({i})")
        project.makepyfile(**{f"test_more{i}": text})
    seen = {}
    for workers in ((), ("-n", "2"), ("-n", "4")):
        uri = f"sqlite:///{tmp_path}/mlflow{len(workers) and workers[1]}.db"
        out = inner(project, f"--llmops-tracking-uri={uri}", "--llmops-report-json=r.json", "-q", *workers, INNER_N="8")
        record = json.loads((project.path / "r.json").read_text())
        assert len(record["results"]) == 8, out.text[-2000:]
        seen[workers] = sorted((r["test_id"], r["check"], r["verdict"], r["k"], r["n"]) for r in record["results"])
        (run,) = runs(MlflowClient(uri))
        assert len([k for k in run.data.metrics if k.endswith("/rate")]) == 8
        assert run.data.tags[COMPLETE_TAG] == "true"
    assert seen[()] == seen[("-n", "2")] == seen[("-n", "4")]
    assert len({(k, n) for *_, k, n in seen[()]}) > 2  # the counts differ by requirement: a real comparison


def test_session_is_one_run_with_params_metrics_table_and_registry(project, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MY_API_KEY", "leaky-secret-value-42")
    project.makepyfile(test_more=INNER_TEST.replace("test_triage", "test_triage_again"))
    result = inner(
        project,
        f"--llmops-tracking-uri={uri}",
        "-n",
        "2",
        INNER_LEAK=" leaky-secret-value-42",
        LLMOPS_PR_NUMBER="12",
        GITHUB_SHA="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
    )
    result.stdout.fnmatch_lines(["*MLflow run * in experiment 'llmops' at sqlite://*"])
    assert " INFO " not in result.text  # MLflow's own lines (creating the store's tables) stay out
    client = MlflowClient(uri)
    (run,) = runs(client)  # one run per session, also under xdist
    assert run.info.run_name == "pr-12@1a2b3c4"
    assert run.data.params["settings.tolerance"] == "auto"
    assert run.data.params["models"] == "function:model"
    assert run.data.params["prompt.triage.version"] == Prompt("triage", "Ticket #{n}: classify it").version
    assert run.data.tags[COMPLETE_TAG] == "true" and run.data.tags["llmops.pass"] in ("1", "2", "3", "4")
    rate_keys = [k for k in run.data.metrics if k.endswith("/rate")]
    assert len(rate_keys) == 4 and all(0 <= run.data.metrics[k] <= 1 for k in rate_keys)
    assert "test_triage/triage/json_valid.at_least_0.8/rate" in rate_keys

    path = client.download_artifacts(run.info.run_id, "llmops/results.json", str(tmp_path))
    record = json.loads(Path(path).read_text())
    assert len(record["results"]) == 4 and {r["test_id"].split("::")[1] for r in record["results"]} == {
        "test_triage",
        "test_triage_again",
    }
    pii_again = next(r for r in record["results"] if r["check"] == "pii" and "again" in r["test_id"])
    (n_key,) = [
        k for k in run.data.metrics if k.startswith("test_triage_again/triage/pii.at_most_0.05") and k.endswith("/n")
    ]
    assert run.data.metrics[n_key] == pii_again["n"] > 0
    table = json.loads(
        Path(client.download_artifacts(run.info.run_id, "llmops/samples.json", str(tmp_path))).read_text()
    )
    cols = table["columns"]
    assert {"case_id", "inputs", "output", "check", "outcome", "latency_s"} <= set(cols)
    assert len(table["data"]) == sum(r["n"] + r["errors"] for r in record["results"])  # each sample a verdict saw
    outputs = [row[cols.index("output")] for row in table["data"]]
    assert any(REDACTED in (o or "") for o in outputs) and not any(
        "leaky-secret-value-42" in (o or "") for o in outputs
    )

    versions = client.search_prompt_versions("triage")
    versions = getattr(versions, "prompt_versions", versions)
    assert len(versions) == 1  # the same text twice in a session is one version
    inner(project, f"--llmops-tracking-uri={uri}")
    assert len(getattr(v := client.search_prompt_versions("triage"), "prompt_versions", v)) == 1  # and across sessions
    inner(project, f"--llmops-tracking-uri={uri}", INNER_PROMPT="Ticket #{n}: classify this")
    assert len(getattr(v := client.search_prompt_versions("triage"), "prompt_versions", v)) == 2


def test_baseline_gate_over_two_sessions(project, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = inner(project, f"--llmops-tracking-uri={uri}", "--llmops-promote=baseline")
    first.stdout.fnmatch_lines(["*promoted run * as baseline @baseline: prompts:/triage/1 -> @baseline*"])
    assert (
        Prompt.load("prompts:/triage@baseline", tracking_uri=uri).version
        == Prompt("triage", "Ticket #{n}: classify it").version
    )

    worse = inner(
        project,
        f"--llmops-tracking-uri={uri}",
        "--llmops-baseline=baseline",
        "--llmops-promote=baseline",  # a session that regressed must not become the baseline
        INNER_PROMPT="Ticket #{n}: classify it quickly",
        INNER_DROP="0.3",
    )
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(
        ["not promoted as @baseline: * REGRESSED against the baseline; *pytest exited with status 1*--force`)"]
    )
    client = MlflowClient(uri)
    assert client.get_experiment_by_name("llmops").tags[ALIAS_TAG + "baseline"] == first_run(client)
    worse.stdout.fnmatch_lines(
        [
            "*REGRESSED triage * -> *: valid JSON (at least 80%): pass rate changed by -*% (95% interval *) over "
            "* pairs (* better, * worse, * tied; baseline rerun, @baseline (run *)); worse than the baseline, "
            "with false-alarm rate <= 1%*",
            # the PII requirement was never reached in the failing test: the gate says so
            "MISSING test_triage: personal data * at most 0.05 is in baseline @baseline*",
        ]
    )
    same = inner(project, f"--llmops-tracking-uri={uri}", "--llmops-baseline=baseline")
    assert same.ret == 0, same.text[-3000:]
    same.stdout.fnmatch_lines(["test_triage*unchanged*"])

    missing = inner(project, f"--llmops-tracking-uri={uri}", "--llmops-baseline=nightly")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "baseline 'nightly' is neither" in missing.text and "llmops promote RUN_ID --alias nightly" in missing.text

    plot = tmp_path / "history.png"
    assert cli(["history", "triage", "--tracking-uri", uri, "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 5000


def test_results_file_with_tracking_off_is_a_baseline(project):
    first = inner(project, "--llmops-tracking=off", "--llmops-report-json=out/base.json")
    assert first.ret == 0, first.text[-2000:]
    record = json.loads((project.path / "out" / "base.json").read_text())
    assert len(record["results"]) == 2 and record["outcome"]["counts"]["PASS"] == 2
    assert not [p.name for p in project.path.iterdir() if p.name in ("mlflow.db", "mlruns", ".llmops")]

    worse = inner(
        project,
        "--llmops-tracking=off",
        "--llmops-baseline=out/base.json",
        INNER_PROMPT="Ticket #{n}: classify it quickly",
        INNER_DROP="0.3",
    )
    assert worse.ret == 1
    worse.stdout.fnmatch_lines(["*REGRESSED triage * -> *(* tied; baseline rerun, file out/base.json)*"])


# -- a real server -------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        if self.proc is not None:
            self.proc.wait(30)  # reap a server that was killed from outside
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root}/server.db",
            "--artifacts-destination",
            str(self.root / "artifacts"),
        ]
        with open(self.root / "server.log", "ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield s
    s.stop()


def test_real_server_round_trip(project, server):
    result = inner(project, f"--llmops-tracking-uri={server.url}", "--llmops-experiment=gate", "--llmops-promote=main")
    result.stdout.fnmatch_lines([f"*MLflow run * in experiment 'gate' at {server.url}*"])
    assert "View run" not in result.text and " INFO " not in result.text  # MLflow's own lines stay out
    client = MlflowClient(server.url)
    (run,) = runs(client, "gate")
    assert run.data.metrics and run.data.params["prompt.triage.registry_version"] == "1"
    assert (
        Prompt.load("prompts:/triage@main", tracking_uri=server.url).version == run.data.params["prompt.triage.version"]
    )


KILLER = """
import os, signal, time, urllib.request

def test_a_kill_the_server():
    os.killpg(int(os.environ["SERVER_PGID"]), signal.SIGTERM)
    for _ in range(100):
        try:
            urllib.request.urlopen(os.environ["SERVER_URL"] + "/health", timeout=0.5)
        except OSError:
            return
        time.sleep(0.2)
    raise AssertionError("server still up")
"""


def test_server_killed_mid_session_then_sync_uploads_once(project, server):
    project.makepyfile(test_a_killer=KILLER)
    result = inner(
        project,
        f"--llmops-tracking-uri={server.url}",
        "--llmops-experiment=outage",
        "-p",
        "no:randomly",
        SERVER_PGID=str(server.proc.pid),
        SERVER_URL=server.url,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*MLflow at * failed (*unreachable*); results kept in *spool*; upload later with `llmops sync`*"]
    )
    spool = project.path / ".llmops" / "spool"
    (kept,) = list(spool.glob("*.json"))
    session_id = json.loads(kept.read_text())["session_id"]
    backup = kept.read_bytes()

    server.start()
    assert cli(["sync", "--tracking-uri", server.url, "--experiment", "outage", "--spool-dir", str(spool)]) == 0
    assert not list(spool.glob("*.json"))
    client = MlflowClient(server.url)
    (run,) = runs(client, "outage")
    assert run.data.tags[SESSION_TAG] == session_id and len(json.loads(backup)["results"]) == 2
    # A second sync, even of the same record again (a crash after upload), adds nothing.
    assert cli(["sync", "--tracking-uri", server.url, "--experiment", "outage", "--spool-dir", str(spool)]) == 0
    kept.write_bytes(backup)
    assert cli(["sync", "--tracking-uri", server.url, "--experiment", "outage", "--spool-dir", str(spool)]) == 0
    assert len(runs(client, "outage")) == 1


def test_sync_when_the_server_dies_mid_upload_says_how_far_it_got(server, tmp_path, monkeypatch, capsys):
    spool_dir = tmp_path / "spool"
    for template in ("Ticket #{n}: one", "Ticket #{n}: two"):
        spool.write(session_record(template), spool_dir)
    upload = MlflowStore.log_session

    def upload_then_die(self, record):
        run_id = upload(self, record)
        server.stop()  # the server goes away after the first session
        return run_id

    monkeypatch.setattr(MlflowStore, "log_session", upload_then_die)
    args = ["sync", "--tracking-uri", server.url, "--experiment", "midway", "--spool-dir", str(spool_dir)]
    assert cli(args) == 2
    out, err = capsys.readouterr()
    assert out.startswith("session ") and len(out.splitlines()) == 1  # the first one made it
    (line,) = err.strip().splitlines()
    assert f"MLflow at {server.url} failed while uploading" in line and "1 of 2 session(s) uploaded, 1 still in" in line
    assert "run `llmops sync` again when the server is back" in line and "Traceback" not in err
    assert len(list(spool_dir.glob("*.json"))) == 1

    server.start()
    monkeypatch.setattr(MlflowStore, "log_session", upload)
    assert cli(args) == 0 and not list(spool_dir.glob("*.json"))
    assert len(runs(MlflowClient(server.url), "midway")) == 2


def test_an_optimizer_candidate_is_registered_as_candidate_with_a_nested_run(tmp_path):
    # The session record is what the plugin logs; the candidate entry comes from a real search.
    import subprocess as sp

    script = tmp_path / "go.py"
    script.write_text(
        """
import sys
from llmops import checks, Session
from llmops.optimize.simulate import SimulatedTask
from llmops.optimize.trigger import search
from llmops.tracking.mlflow_store import MlflowStore
from llmops.tracking import new_record, finish

task = SimulatedTask(seed=1)
run = Session(model=task.model, test_id="t::t").sample(task.regressed, task.cases)
run.evaluate(checks.exact(), at_least=0.5)
run.baseline_prompt = task.baseline
candidate = search(run, sys.argv[2])
record = finish(new_record({}, None), [r.to_dict() for r in run.results])
record["candidates"] = [candidate]
print(MlflowStore(sys.argv[1], "opt").log_session(record))
"""
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = sp.run(
        [sys.executable, str(script), uri, str(tmp_path / "cands")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    parent = out.stdout.strip().splitlines()[-1]
    client = MlflowClient(uri)
    pv = client.get_prompt_version_by_alias("support-bot", "candidate")
    assert pv.tags["llmops.parent_version"] and float(pv.tags["llmops.recovery"]) > 0.5
    exp = client.get_experiment_by_name("opt")
    (child,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert child.data.tags["llmops.candidate"] == f"prompts:/support-bot/{pv.version}"
    assert "recovery" in child.data.metrics and client.get_metric_history(child.info.run_id, "train")


# -- accepting a candidate: llmops promote --prompt NAME --candidate ------------------------


@pytest.fixture(scope="module")
def candidate_store(tmp_path_factory):
    """A real sqlite store where a session logged a real optimizer candidate for support-bot,
    and the session that ran the baseline text was promoted as @baseline."""
    from llmops.optimize.simulate import SimulatedTask
    from llmops.optimize.trigger import search
    from llmops.tracking.record import finish as finish_record

    root = tmp_path_factory.mktemp("candidate")
    uri = f"sqlite:///{root}/mlflow.db"
    task = SimulatedTask(seed=1)
    store = MlflowStore(uri, "opt")
    base = Session(model=task.model, test_id="t::t").sample(task.baseline, task.cases)
    base.evaluate(checks.exact(), at_least=0.5)
    base_run = store.log_session(finish_record(new_record({}), [r.to_dict() for r in base.results]))
    store.promote(base_run, "baseline")
    run = Session(model=task.model, test_id="t::t").sample(task.regressed, task.cases)
    run.evaluate(checks.exact(), at_least=0.5)
    run.baseline_prompt = task.baseline
    candidate = search(run, root / "cands")
    assert candidate.get("version"), candidate["message"]
    record = finish_record(new_record({}), [r.to_dict() for r in run.results])
    record["candidates"] = [candidate]
    store.log_session(record)
    return root / "mlflow.db", base_run, candidate


def _copy_store(candidate_store, tmp_path):
    import shutil

    db, base_run, candidate = candidate_store
    shutil.copy(db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db", base_run, candidate


def _inventory(client: MlflowClient) -> tuple:
    """Everything promote must never create: prompts, versions, experiments, runs."""
    prompts = sorted(p.name for p in client.search_prompts())
    versions = sorted((n, v.version) for n in prompts for v in client.search_prompt_versions(n))
    experiments = sorted(e.name for e in client.search_experiments())
    exps = [e.experiment_id for e in client.search_experiments()]
    return prompts, versions, experiments, len(client.search_runs(exps))


def test_promote_candidate_moves_only_the_alias_and_prints_the_held_out_numbers(candidate_store, tmp_path, capsys):
    uri, base_run, candidate = _copy_store(candidate_store, tmp_path)
    client = MlflowClient(uri)
    before = _inventory(client)
    old = client.get_prompt_version_by_alias("support-bot", "baseline").version
    cand = client.get_prompt_version_by_alias("support-bot", "candidate")
    assert old != cand.version  # the optimizer never moved @baseline
    args = ["promote", "--prompt", "support-bot", "--candidate", "--tracking-uri", uri, "--experiment", "opt"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version == cand.version
    assert client.get_prompt_version_by_alias("support-bot", "candidate").version == cand.version
    assert _inventory(client) == before  # nothing created
    # The run-level baseline (what --llmops-baseline=baseline reads) is the promoted session still.
    assert client.get_experiment_by_name("opt").tags[ALIAS_TAG + "baseline"] == base_run
    recovery = candidate["result"]["recovery"]["value"]
    (score,) = candidate["result"]["test_scores"]
    assert f"prompts:/support-bot/{cand.version} (@candidate) -> @baseline (was version {old})" in out
    assert f"proposed for support-bot@{candidate['incumbent_version']}" in out
    assert f"held-out recovery {100 * recovery:.0f}%" in out
    assert f"held out: {score['requirement']}: {100 * score['rate']:.0f}% ({score['verdict']})" in out
    assert f"still compares against run {base_run}" in out
    # The prompt the registry now serves is the candidate's text.
    assert Prompt.load("prompts:/support-bot@baseline", tracking_uri=uri).version == candidate["version"]
    # Again: nothing to move, exit 0.
    assert cli(args) == 0
    assert "already version" in capsys.readouterr().out


def test_promote_candidate_refusals_name_the_fix_and_change_nothing(candidate_store, tmp_path, capsys):
    uri, _, _ = _copy_store(candidate_store, tmp_path)
    client = MlflowClient(uri)
    before = _inventory(client)
    baseline_version = client.get_prompt_version_by_alias("support-bot", "baseline").version

    def refused(*extra: str) -> str:
        assert cli(["promote", *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "Traceback" not in captured.err
        (line,) = captured.err.strip().splitlines()
        return line

    common = ["--tracking-uri", uri, "--experiment", "opt"]
    line = refused("--prompt", "no-such-prompt", "--candidate", *common)
    assert "prompt 'no-such-prompt' is not in the prompt registry" in line and "support-bot" in line
    assert "check --prompt" in line
    client.delete_prompt_alias("support-bot", "candidate")
    line = refused("--prompt", "support-bot", "--candidate", *common)
    assert "has no version with the alias @candidate" in line and "--llmops-optimize=on-regression" in line
    assert "--alias candidate would move" in refused(
        "--prompt", "support-bot", "--candidate", "--alias", "candidate", *common
    )
    assert "add --candidate" in refused("--prompt", "support-bot", *common)
    assert "give both --prompt NAME and --candidate" in refused("--candidate", *common)
    assert "not both" in refused("some-run-id", "--prompt", "support-bot", "--candidate", *common)
    assert "give the RUN_ID to promote" in refused(*common)
    assert _inventory(client) == before
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version == baseline_version

    # A store that does not exist is not created; a server that does not answer is named.
    missing = tmp_path / "nowhere.db"
    line = refused("--prompt", "support-bot", "--candidate", "--tracking-uri", f"sqlite:///{missing}")
    assert f"there is no MLflow store at sqlite:///{missing}" in line and "--tracking-uri" in line
    assert not missing.exists()
    port = _free_port()
    line = refused("--prompt", "support-bot", "--candidate", "--tracking-uri", f"http://127.0.0.1:{port}")
    assert f"http://127.0.0.1:{port} is unreachable" in line


def test_promote_candidate_refuses_a_candidate_that_misses_on_held_out_cases_unless_forced(
    candidate_store, tmp_path, capsys
):
    uri, _, _ = _copy_store(candidate_store, tmp_path)
    client = MlflowClient(uri)
    cand = client.get_prompt_version_by_alias("support-bot", "candidate")
    (key,) = [k for k in cand.tags if k.startswith("llmops.test.")]
    client.set_prompt_version_tag("support-bot", cand.version, key, "0.3000 (misses) exact at least 50%")
    args = ["promote", "--prompt", "support-bot", "--candidate", "--tracking-uri", uri, "--experiment", "opt"]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "misses 'exact at least 50%' on its held-out test cases (30%)" in err and "--force" in err
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version != cand.version
    assert cli([*args, "--force"]) == 0
    assert "warning: accepting anyway (--force)" in capsys.readouterr().out
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version == cand.version


def test_promote_candidate_refuses_an_alias_another_experiment_owns_unless_forced(candidate_store, tmp_path, capsys):
    uri, base_run, _ = _copy_store(candidate_store, tmp_path)
    client = MlflowClient(uri)
    cand = client.get_prompt_version_by_alias("support-bot", "candidate")
    old = client.get_prompt_version_by_alias("support-bot", "baseline").version
    args = ["promote", "--prompt", "support-bot", "--candidate", "--tracking-uri", uri, "--experiment", "other"]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert f"prompts:/support-bot@baseline is the baseline of experiment 'opt' (run {base_run})" in err
    assert "pass --experiment 'opt' if that is yours, or use another --alias for 'other'" in err
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version == old
    assert cli([*args, "--alias", "other-baseline"]) == 0  # an alias of its own is free to set
    assert client.get_prompt_version_by_alias("support-bot", "other-baseline").version == cand.version
    assert "has no baseline run @other-baseline yet" in capsys.readouterr().out
    assert cli([*args, "--force"]) == 0
    assert client.get_prompt_version_by_alias("support-bot", "baseline").version == cand.version


# -- the uploader: MLflow readied in a helper process while the tests sample -----------------


def test_the_uploader_logs_the_spooled_session_and_exits(tmp_path):
    from llmops.tracking import publish
    from llmops.tracking.uploader import Uploader

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    helper = Uploader(uri, "helped", tmp_path)
    proc = helper.proc
    record = session_record()
    run_id, line = publish(record, uri, "helped", tmp_path / "spool", helper)
    assert line == f"MLflow run {run_id} in experiment 'helped' at {uri}"
    assert proc.wait(timeout=30) == 0 and helper.proc is None  # it answered, then went
    (run,) = runs(MlflowClient(uri), "helped")
    assert run.info.run_id == run_id and run.data.tags[SESSION_TAG] == record["session_id"]
    assert not list((tmp_path / "spool").glob("*.json"))


def test_without_its_uploader_the_session_uploads_itself(tmp_path):
    from llmops.tracking import publish
    from llmops.tracking.uploader import Uploader

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    dead = Uploader(uri, "alone", tmp_path)
    dead.proc.kill()  # died (out of memory, say) before the session ended
    dead.proc.wait()
    run_id, line = publish(session_record(), uri, "alone", tmp_path / "spool", dead)
    assert run_id is not None and line.startswith(f"MLflow run {run_id}")
    assert [r.info.run_id for r in runs(MlflowClient(uri), "alone")] == [run_id]

    idle = Uploader(uri, "alone", tmp_path)  # a session without results lets it go: it exits by itself
    proc = idle.proc
    idle.close()
    assert proc.wait(timeout=120) == 0 and len(runs(MlflowClient(uri), "alone")) == 1
