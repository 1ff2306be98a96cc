"""Interrupting a session mid-sampling (Ctrl-C, or SIGTERM from a cancelled CI job) leaves the
results file, the response cache and the MLflow spool consistent; the next session and
`llmops sync` complete them.  A real pytest subprocess against a slow loopback server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from llmops.cli import main as cli

SUITE = """
import os
import pytest
from langchain_openai import ChatOpenAI
from llmops import Case, Prompt, checks

@pytest.fixture
def llmops_model():
    return ChatOpenAI(model="gpt-test", api_key="sk-interrupt-0123456789", base_url=os.environ["BASE_URL"])

@pytest.mark.parametrize("kind", ["first", "second", "third"])
def test_gate(llmops, kind):
    at_least = 0.5 if kind == "first" else 0.95  # the first decides quickly, the others take a while
    llmops.sample(Prompt("p", "answer for {kind}"), Case({"kind": kind})).expect(checks.json_valid(), at_least=at_least)
"""


def start(root: Path, base_url: str, *args: str, tracking: str = "off") -> subprocess.Popen[str]:
    (root / "test_suite.py").write_text(SUITE)
    env = {**os.environ, "BASE_URL": base_url, "PYTHONPATH": "", "LLMOPS_TRACKING": tracking}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--llmops-concurrency=2",
            *args,
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C reaches the session as it would from a terminal (a test runner may ignore SIGINT).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def interrupt_mid_sampling(proc: subprocess.Popen[str], server: FakeOpenAI, sig: int, after: int) -> str:
    """Send ``sig`` once the server has seen ``after`` requests; the session's output."""
    deadline = time.monotonic() + 120  # bounded, whatever happens
    while server.requests < after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the session ended before it was interrupted:\n" + (proc.communicate()[0] or "")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return out


def cached_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_session_leaves_results_cache_and_spool_consistent(tmp_path, sig):
    dead = "http://127.0.0.1:9"  # the discard port: nothing answers, so the record is spooled
    spool, cache = tmp_path / ".llmops" / "spool", tmp_path / ".llmops" / "cache.sqlite"
    # One server for both sessions: the cache knows a model by its base URL.
    with FakeOpenAI('{"ok": true}', latency=0.1) as server:
        proc = start(
            tmp_path, server.base_url, "--llmops-report-json=r.json", f"--llmops-tracking-uri={dead}", tracking="on"
        )
        out = interrupt_mid_sampling(proc, server, sig, after=40)  # the first test has decided by then
        seen = server.requests
        assert proc.returncode == 2, out  # pytest's INTERRUPTED
        assert "KeyboardInterrupt" in out

        # The results file: whole, valid, and marked partial, with the tests that finished.
        report = json.loads((tmp_path / "r.json").read_text())
        assert report["outcome"]["partial"] == "interrupted" and 1 <= len(report["results"]) < 3
        assert sum(r["calls"] + r["retries"] for r in report["results"]) <= seen
        # The spool: one whole record of the same session, no half-written file.
        (kept,) = spool.glob("*.json")
        assert json.loads(kept.read_text())["session_id"] == report["session_id"]
        assert not list(spool.glob("*.tmp")) and not list(tmp_path.glob("*.tmp"))
        # The cache: a sound sqlite file holding answers drawn before the interrupt.
        rows = cached_rows(cache)
        assert rows >= report["results"][0]["calls"]
        if sig == signal.SIGINT:
            return

        # The next session completes the work: what was cached is replayed, not called again.
        proc = start(tmp_path, server.base_url, "--llmops-report-json=again.json")
        out, _ = proc.communicate(timeout=300)
        called = server.requests - seen
    assert proc.returncode == 0, out
    again = json.loads((tmp_path / "again.json").read_text())["results"]
    assert [r["verdict"] for r in again] == ["PASS"] * 3
    assert sum(r["replayed"] for r in again) >= rows and sum(r["calls"] for r in again) == called
    assert cached_rows(cache) == rows + called

    # `llmops sync` uploads the interrupted session's record, once.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert cli(["sync", "--tracking-uri", uri, "--spool-dir", str(spool)]) == 0
    assert not list(spool.glob("*.json"))
    import mlflow

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("llmops").experiment_id])
    assert run.data.tags["llmops.session_id"] == report["session_id"]


def test_an_upload_cut_short_by_ctrl_c_is_finished_by_sync_once(tmp_path, monkeypatch):
    """Ctrl-C while the record is being logged to MLflow (a half-written run): the record is
    still in the spool, and `llmops sync` replaces the half-written run with a complete one."""
    import mlflow
    from test_tracking import session_record

    from llmops.tracking import publish
    from llmops.tracking.mlflow_store import COMPLETE_TAG

    uri, spool = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "spool"
    record = session_record()
    log_dict = mlflow.MlflowClient.log_dict

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt  # after the run, its params and metrics, before the artifact and the end tag

    monkeypatch.setattr(mlflow.MlflowClient, "log_dict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        publish(record, uri, "cut", spool)
    (kept,) = spool.glob("*.json")
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("cut").experiment_id
    (half,) = client.search_runs([experiment])
    assert half.data.tags.get(COMPLETE_TAG) != "true"

    monkeypatch.setattr(mlflow.MlflowClient, "log_dict", log_dict)
    assert cli(["sync", "--tracking-uri", uri, "--experiment", "cut", "--spool-dir", str(spool)]) == 0
    assert not kept.exists()
    (run,) = client.search_runs([experiment])  # one run: the half-written one was replaced
    assert run.data.tags[COMPLETE_TAG] == "true" and run.data.tags["llmops.session_id"] == record["session_id"]
