"""The GitHub side of the PR gate: one PR comment updated in place, and shards merged.

The comment is tested against a fake of GitHub's REST API on 127.0.0.1 (it records every
request and pages comment lists like GitHub does); the shards are real results files
written by two pytest sessions, each running half of one suite.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from llmops.report import github
from llmops.report.commands import main as report
from llmops.report.github import MARKER, MAX_BODY, GitHub, GitHubError, comment_body, post_report, pull_request
from llmops.report.json import validate
from llmops.report.merge import load_record, merge, verdict

TOKEN = "t0k3n-for-the-fake"
REPO, PR = "acme/prompts", 7


class FakeGitHub:
    """Just enough of api.github.com for issue comments; pages of ``page_size`` comments."""

    def __init__(self, page_size: int = 2):
        self.page_size = page_size
        self.comments: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.refuse_writes: int | None = None  # an HTTP status for POST/PATCH, e.g. 403
        self._next_id = 1000
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                url = urlsplit(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                fake.requests.append((method, url.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"message": "Bad credentials"})
                if method != "GET" and fake.refuse_writes:
                    return self._send(fake.refuse_writes, {"message": "Resource not accessible by integration"})
                parts = url.path.strip("/").split("/")  # repos/acme/prompts/issues/...
                if f"{parts[1]}/{parts[2]}" != REPO:
                    return self._send(404, {"message": "Not Found"})
                if method == "GET" and parts[3:] == ["issues", str(PR), "comments"]:
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    start = (page - 1) * fake.page_size
                    chunk = fake.comments[start : start + fake.page_size]
                    headers = []
                    if start + fake.page_size < len(fake.comments):
                        nxt = f"http://127.0.0.1:{fake.port}{url.path}?per_page=100&page={page + 1}"
                        headers.append(("Link", f'<{nxt}>; rel="next", <{nxt}>; rel="last"'))
                    return self._send(200, chunk, headers)
                if method == "POST" and parts[3:] == ["issues", str(PR), "comments"]:
                    return self._send(201, fake.add(body["body"], "github-actions[bot]"))
                if method == "PATCH" and parts[3:5] == ["issues", "comments"]:
                    for c in fake.comments:
                        if c["id"] == int(parts[5]):
                            c["body"] = body["body"]
                            return self._send(200, c)
                return self._send(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, body: str, login: str = "someone") -> dict:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.com/{REPO}/pull/{PR}#issuecomment-{self._next_id}",
        }
        self.comments.append(comment)
        return comment

    def ours(self) -> list[dict]:
        return [c for c in self.comments if c["body"].startswith(MARKER)]

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    server = FakeGitHub()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": PR}}))
    for k, v in {
        "GITHUB_API_URL": server.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "42",
    }.items():
        monkeypatch.setenv(k, v)
    yield server
    server.server.shutdown()
    server.server.server_close()


# -- the comment ---------------------------------------------------------------------------


def test_the_first_report_creates_the_comment_and_every_later_one_updates_it(fake):
    first = post_report("## llmops: passed\n\n3 PASS")
    assert first.startswith(f"created the llmops comment on {REPO}#{PR}: https://github.com/")
    assert [m for m, _ in fake.writes()] == ["POST"]
    second = post_report("## llmops: FAILED\n\n1 FAIL")
    assert second.startswith("updated") and [m for m, _ in fake.writes()] == ["POST", "PATCH"]
    (ours,) = fake.ours()  # never two comments
    assert ours["body"].startswith(MARKER) and "1 FAIL" in ours["body"] and "3 PASS" not in ours["body"]
    assert "/actions/runs/42" not in ours["body"]  # a short report needs no pointer to the artifacts


def test_our_comment_is_found_among_other_comments_on_a_later_page(fake):
    for i in range(3):
        fake.add(f"looks good {i}")
    post_report("first report")
    for i in range(4):  # people keep talking; ours stays on page 2 of 5
        fake.add(f"what about case {i}? (mentions {MARKER[5:-4]} but is not ours)")
    fake.add(f"> quoting: {MARKER}")  # quoting the marker does not make a comment ours
    post_report("third report")
    post_report("fourth report")
    assert len(fake.ours()) == 1 and fake.ours()[0]["body"].endswith("fourth report\n")
    assert [m for m, _ in fake.writes()] == ["POST", "PATCH", "PATCH"]
    pages = [r for r in fake.requests if r[0] == "GET"]
    assert len(pages) == 2 + 2 + 2  # every page when there is none yet, then the pages up to ours


def test_errors_name_the_fix(fake, monkeypatch, tmp_path):
    fake.refuse_writes = 403
    with pytest.raises(GitHubError, match=r"403 .*Resource not accessible.*permissions: pull-requests: write"):
        post_report("report")
    fake.refuse_writes = None
    with pytest.raises(GitHubError, match="the token was rejected; check GITHUB_TOKEN"):
        post_report("report", token="wrong")
    with pytest.raises(GitHubError, match=r"no such repository or pull request.*check --repo and --pr"):
        post_report("report", repo="acme/elsewhere")
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.delenv("GH_TOKEN", raising=False)
    with pytest.raises(GitHubError, match=r"no GitHub token: set GITHUB_TOKEN .*pull-requests: write"):
        post_report("report")
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main", "commits": []}))
    env = {"GITHUB_REPOSITORY": REPO, "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(push)}
    with pytest.raises(GitHubError, match=r"no pull request number: this is a 'push' event.*pass --pr N"):
        pull_request(env=env)
    with pytest.raises(GitHubError, match=r"no repository to comment on.*--repo OWNER/NAME"):
        pull_request(env={})
    with pytest.raises(GitHubError, match=r"cannot reach the GitHub API at http://127\.0\.0\.1:9"):
        GitHub(TOKEN, "http://127.0.0.1:9").upsert(pull_request(REPO, PR), "x")
    assert fake.ours() == []


def test_the_pull_request_comes_from_flags_the_event_or_the_ref(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"issue": {"number": 12, "pull_request": {}}}))  # issue_comment on a PR
    assert pull_request(env={"GITHUB_REPOSITORY": REPO, "GITHUB_EVENT_PATH": str(event)}).number == 12
    assert pull_request(env={"GITHUB_REPOSITORY": REPO, "GITHUB_REF": "refs/pull/31/merge"}).number == 31
    assert pull_request("o/r", 5, env={}) == github.PullRequest("o/r", 5)


def test_a_report_too_long_for_a_comment_is_cut_at_a_line_with_a_pointer_to_the_artifacts():
    row = "| `test_x[case-{i}]` | valid JSON >= 0.9 | 45/50 | 80-96% | **PASS** | não pior 😀 | 50 |\n"
    huge = "## llmops\n\n```\n" + "".join(row.format(i=i) for i in range(3000))
    body = comment_body(huge, "https://github.com/acme/prompts/actions/runs/42")
    assert len(huge) > MAX_BODY and len(body) < MAX_BODY and len(body.encode("utf-16-le")) // 2 < MAX_BODY
    assert body.startswith(MARKER + "\n## llmops")
    assert body.count("```") % 2 == 0  # the open code block is closed before the note
    assert body.rstrip().endswith("artifacts ([workflow run](https://github.com/acme/prompts/actions/runs/42)).*")
    kept = body.split("```")[1]
    assert all(line.endswith("| 50 |") for line in kept.strip().splitlines())  # whole lines only
    short = comment_body("## llmops: passed")
    assert short == f"{MARKER}\n## llmops: passed\n"


# -- shards --------------------------------------------------------------------------------

CONFTEST = """
import os
import pytest
from llmops import FunctionModel

@pytest.fixture
def llmops_model():
    def model(text, rng):
        broken = os.environ.get("BREAK")
        rate = 0.3 if broken and broken in text else 0.97
        return '{"category": "billing"}' if rng.random() < rate else "sorry"
    return FunctionModel(model, id="sim")
"""

SUITE = """
from llmops import Case, Prompt, checks

CASES = [Case({"n": i}, id=f"t{i}") for i in range(6)]

def sample(llmops, name):
    return llmops.sample(Prompt(name, name + " ticket #{n}: classify it"), CASES)

def test_alpha(llmops):
    sample(llmops, "alpha").expect(checks.json_valid(), at_least=0.8)

def test_beta(llmops):
    sample(llmops, "beta").expect(checks.json_valid(), at_least=0.8)

def test_gamma(llmops):
    sample(llmops, "gamma").expect(checks.json_valid(), at_least=0.8)

def test_delta(llmops):
    run = sample(llmops, "delta")
    run.expect(checks.json_valid(), at_least=0.8)
    run.expect(checks.pii(), at_most=0.05)
"""

HALVES = ("alpha or beta", "gamma or delta")
HALVES_TESTS = ("alpha", "beta", "gamma", "delta")


@pytest.fixture
def suite(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_shard_suite=SUITE)  # not test_prompts: our own module of that name may be loaded
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(pytester.path / ".cache"))
    monkeypatch.setenv("GITHUB_SHA", "c0ffee" + "0" * 34)
    for k in ("GITHUB_HEAD_REF", "GITHUB_REF", "GITHUB_REF_NAME", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(k, raising=False)
    return pytester


def shard(pytester, i, *args, passed=2, failed=0):
    """Run half of the suite as shard ``i`` (as a CI matrix job would); its results file."""
    result = pytester.runpytest("-k", HALVES[i - 1], f"--llmops-report-json=results-{i}.json", *args)
    result.assert_outcomes(passed=passed, failed=failed)
    return pytester.path / f"results-{i}.json"


def test_two_shards_merge_into_one_record_and_one_verdict(suite, capsys):
    one, two = shard(suite, 1), shard(suite, 2)
    out, md, page = suite.path / "merged.json", suite.path / "report.md", suite.path / "report.html"
    pattern = str(suite.path / "results-*.json")  # quoted in CI YAML: expanded here
    assert report(["--merge", pattern, "--json", str(out), "--md", str(md), "--html", str(page)]) == 0
    assert "llmops gate passed: 5 PASS" in capsys.readouterr().out
    merged = json.loads(out.read_text())
    validate(merged)  # the documented layout, so a merged file is a baseline like any other
    assert merged["outcome"] == {
        "counts": {"PASS": 5, "FAIL": 0, "ERROR": 0},
        "regressed": 0,
        "exit_status": 0,
        "partial": None,
    }
    a, b = load_record(one), load_record(two)
    assert len(merged["results"]) == len(a["results"]) + len(b["results"]) == 5
    assert {r["test_id"].split("::")[1] for r in merged["results"]} == {f"test_{x}" for x in HALVES_TESTS}
    assert merged["session_id"] not in (a["session_id"], b["session_id"])  # a new run, not a re-upload
    assert merged["git"]["commit"] == a["git"]["commit"] == "c0ffee" + "0" * 34
    assert [s["session_id"] for s in merged["shards"]] == [a["session_id"], b["session_id"]]
    assert merged["settings"]["report_json"] == ["results-1.json", "results-2.json"]  # where shards differ
    assert merged["started"] == min(a["started"], b["started"])
    assert merged["finished"] == max(a["finished"], b["finished"])
    assert md.read_text().startswith("### ✅ llmops: PASS · 5 requirements") and "test_gamma" in md.read_text()
    assert page.read_text().startswith("<!DOCTYPE html>")
    # a single file reports as itself; two files without --merge is a usage error
    assert report([str(one)]) == 0
    assert report([str(one), str(two)]) == 2
    assert "pass --merge" in capsys.readouterr().err


def test_a_failure_in_any_shard_fails_the_merged_verdict(suite, monkeypatch, capsys):
    one = shard(suite, 1)
    monkeypatch.setenv("BREAK", "delta ticket")
    two = shard(suite, 2, passed=1, failed=1)
    assert report(["--merge", str(one), str(two)]) == 1
    out = capsys.readouterr().out
    # the PII requirement of test_delta never ran: its first expect() failed the test
    assert "llmops gate FAILED: 3 PASS, 1 FAIL" in out and "FAIL test_delta: valid JSON at least 0.8" in out
    assert verdict(merge([("1", load_record(one))])).failed is False


def test_shards_of_different_commits_or_with_the_same_tests_are_refused(suite, monkeypatch, capsys):
    one = shard(suite, 1)
    monkeypatch.setenv("GITHUB_SHA", "bad" * 13 + "b")
    two = shard(suite, 2)
    assert report(["--merge", str(one), str(two)]) == 2
    err = capsys.readouterr().err
    assert "shards come from different commits (c0ffee000000: " in err and "or pass --force" in err
    assert report(["--merge", "--force", str(one), str(two)]) == 0
    again = suite.path / "again.json"
    again.write_text(one.read_text())
    assert report(["--merge", "--force", str(one), str(two), str(again)]) == 2
    err = capsys.readouterr().err
    assert "2 requirement(s) ran in more than one shard" in err
    assert f"test_alpha: json_valid at_least 0.8 in {one}, {again}" in err


def test_requirements_no_shard_ran_are_missing_from_the_baseline(suite, capsys):
    full = suite.runpytest("--llmops-report-json=baseline.json")
    full.assert_outcomes(passed=4)
    base = str(suite.path / "baseline.json")
    # each shard compares with the whole baseline, so it allows what the other shard runs
    one = shard(suite, 1, f"--llmops-baseline={base}", "--llmops-allow-missing=on")
    two = shard(suite, 2, f"--llmops-baseline={base}", "--llmops-allow-missing=on")
    assert report(["--merge", str(one), str(two), "--baseline", base]) == 0
    capsys.readouterr()
    assert report(["--merge", str(one), "--baseline", base]) == 1
    out = capsys.readouterr().out
    assert "3 missing" in out and "MISSING test_delta: personal data" in out
    md = suite.path / "missing.md"
    assert report(["--merge", str(one), "--baseline", base, "--md", str(md)]) == 1
    assert "3 missing from the session" in md.read_text() and "(allowed)" not in md.read_text()
    assert report(["--merge", str(one), "--baseline", base, "--allow-missing"]) == 0
    record = merge([("1", load_record(one)), ("2", load_record(two))])
    record["missing"] = [{"key": load_record(two)["results"][0]["key"], "requirement": "ran in shard 2"}]
    assert verdict(merge([("m", record)])).missing == 0  # a shard's missing entry that another shard ran


def test_tests_that_errored_before_a_verdict_or_an_unclean_run_fail_the_verdict():
    result = {"key": "k1", "test_id": "t.py::test_a", "verdict": "PASS", "direction": "at_least", "threshold": 0.8}
    shard_a = {"session_id": "a", "results": [result], "outcome": {"exit_status": 0}}
    shard_b = {
        "session_id": "b",
        "results": [],
        "outcome": {"exit_status": 1},
        "test_errors": [{"test_id": "t.py::test_b", "error": "NotDecided", "message": "too few cases"}],
    }
    merged = merge([("a.json", shard_a), ("b.json", shard_b)])
    assert merged["outcome"]["exit_status"] == 1 and len(merged["test_errors"]) == 1
    assert verdict(merged).reasons == ("ERROR test_b: NotDecided: too few cases",)
    del merged["test_errors"]
    assert verdict(merged).reasons[0].startswith("pytest exited with status 1: a test outside llmops failed")
    assert not verdict(merge([("a.json", shard_a), ("c.json", {**shard_a, "results": [], "session_id": "c"})])).failed


def test_the_report_command_posts_one_comment_per_pull_request(suite, fake, monkeypatch, capsys):
    one = shard(suite, 1)
    summary = suite.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert report([str(one), "--comment", "--summary"]) == 0
    assert report([str(one), "--comment"]) == 0
    assert "updated the llmops comment on acme/prompts#7" in capsys.readouterr().out
    (ours,) = fake.ours()
    assert "test_alpha" in ours["body"] and "test_alpha" in summary.read_text()


def test_merged_shards_are_one_mlflow_run_and_can_be_promoted(suite, tmp_path):
    one, two = shard(suite, 1), shard(suite, 2)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    script = tmp_path / "merge_to_mlflow.py"
    # MLflow cannot be imported twice in one process next to pytester: a subprocess, as in CI.
    script.write_text(
        """
import json, sys
from mlflow import MlflowClient
from llmops.report.commands import main

one, two, uri, out = sys.argv[1:]
codes = [
    main(["--merge", one, two, "--mlflow", "--tracking-uri", uri, "--promote", "baseline", "--json", out]),
    main(["--merge", one, two, "--tracking-uri", uri, "--baseline", "baseline"]),
    main(["--merge", one, "--tracking-uri", uri, "--baseline", "baseline"]),
]
client = MlflowClient(uri)
exp = client.get_experiment_by_name("llmops")
runs = client.search_runs([exp.experiment_id])
record = json.load(open(client.download_artifacts(runs[0].info.run_id, "llmops/results.json", sys.argv[0] + ".d")))
print("RESULT " + json.dumps({
    "codes": codes,
    "runs": len(runs),
    "tags": runs[0].data.tags,
    "results": len(record["results"]),
    "alias": exp.tags.get("llmops.alias.baseline"),
    "run_id": runs[0].info.run_id,
}))
"""
    )
    (tmp_path / "merge_to_mlflow.py.d").mkdir()
    proc = subprocess.run(
        [sys.executable, str(script), str(one), str(two), uri, str(tmp_path / "merged.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    got = json.loads(line[len("RESULT ") :])
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert got["codes"] == [0, 0, 1]  # logged and promoted; whole baseline present; half of it missing
    assert got["runs"] == 1 and got["results"] == 5 and got["alias"] == got["run_id"]
    assert got["tags"]["llmops.session_id"] == merged["session_id"] and got["tags"]["llmops.pass"] == "5"
    assert got["tags"]["git.commit"] == "c0ffee" + "0" * 34
    assert "MISSING test_gamma: valid JSON at least 0.8" in proc.stdout
