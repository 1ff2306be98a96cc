"""The response cache: keys, modes, several processes on one file, replay in a real suite."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from fake_openai import FakeOpenAI

from llmops import Case, FunctionModel, Prompt, Session, checks
from llmops.cache import ResponseCache, cache_key, main, open_cache, parse_duration
from llmops.errors import ConfigError
from llmops.models import Completion
from llmops.sampling import Request, Sampler, run_sync

P = Prompt("triage", "Ticket: {ticket}")
CASES = [Case({"ticket": f"ticket {i}"}, id=f"t{i}") for i in range(3)]


class Counting:
    """A model with an identity (so it is cached) whose answers depend on the sample's seed."""

    def __init__(self, name: str = "sim-1", temperature: float = 0.7, p: float = 0.9, text: str = "") -> None:
        self.id = f"counting:{name}"
        self.identity = {"model": name, "temperature": temperature}
        self.p = p
        self.text = text
        self.calls = 0

    async def generate(self, messages, *, seed):
        self.calls += 1
        good = random.Random(seed).random() < self.p
        return Completion(self.text or ('{"ok": true}' if good else "sorry"), input_tokens=100, output_tokens=20)


def requests(n: int, text: str = "hi", case: str = "c") -> list[Request]:
    return [Request(case, i, [("human", text)]) for i in range(n)]


def entries(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


@pytest.fixture
def path(tmp_path):
    return tmp_path / ".llmops" / "cache.sqlite"


# --- keys --------------------------------------------------------------------------------


def test_keys_differ_by_model_settings_messages_and_sample_and_agree_otherwise():
    base = {
        "identity": {"id": "openai:gpt-4o-mini", "class": "ChatOpenAI", "temperature": 0.7, "max_tokens": 64},
        "messages": [("system", "Be brief."), ("human", "Ticket: refund")],
        "prompt_version": "abc123",
        "case_key": "case-1",
        "index": 0,
        "seed": 0,
    }

    def key(**changes):
        args = {**base, **changes}
        return cache_key(args.pop("identity"), args.pop("messages"), **args)

    same = key(identity=dict(reversed(base["identity"].items())), messages=list(base["messages"]))
    assert same == key()  # dict order and list/tuple make no difference
    different = [
        key(identity={**base["identity"], "temperature": 0.0}),
        key(identity={**base["identity"], "max_tokens": 65}),
        key(identity={**base["identity"], "base_url": "http://127.0.0.1:8000/v1"}),
        key(identity={**base["identity"], "id": "openai:gpt-4o"}),
        key(messages=[("system", "Be brief."), ("human", "Ticket: refund!")]),
        key(messages=[("human", "Be brief."), ("human", "Ticket: refund")]),
        key(index=1),  # repeated samples are different entries: independent draws
        key(seed=1),  # a seeded model's answer depends on the session seed
        key(case_key="case-2"),
        key(prompt_version="def456"),
    ]
    assert len({key(), *different}) == len(different) + 1


def test_each_sample_index_is_its_own_entry_and_replays_its_own_answer(path):
    model = Counting(p=0.5)
    first = Sampler(model, cache=ResponseCache(path)).draw(requests(20))
    assert model.calls == 20 and entries(path) == 20
    assert len({s.output for s in first}) == 2  # the draws differ: not one answer repeated
    again = Sampler(model, cache=ResponseCache(path)).draw(requests(20))
    assert model.calls == 20 and all(s.cached for s in again)
    assert [s.output for s in again] == [s.output for s in first]
    assert [s.latency_s for s in again] == [s.latency_s for s in first]  # the original call's latency
    assert (again[0].input_tokens, again[0].output_tokens) == (100, 20)


# --- modes -------------------------------------------------------------------------------


def filled(path, n: int = 5) -> Counting:
    model = Counting()
    Sampler(model, cache=ResponseCache(path, "readwrite")).draw(requests(n))
    assert entries(path) == n
    return model


def test_off_never_reads_or_writes(path):
    model = Counting()
    sampler = Sampler(model, cache="off", cache_path=str(path))
    assert sampler.cache is None
    sampler.draw(requests(5))
    assert not path.exists()
    filled(path)
    out = Sampler(model, cache="off", cache_path=str(path)).draw(requests(5))
    assert not any(s.cached for s in out) and entries(path) == 5


def test_read_replays_and_never_writes(path):
    model = Counting()
    Sampler(model, cache=ResponseCache(path, "read")).draw(requests(5))
    assert model.calls == 5 and not path.exists()  # a lookup never creates the file
    filled(path, 5)
    model = Counting()
    out = Sampler(model, cache=ResponseCache(path, "read")).draw(requests(8))
    assert [s.cached for s in out] == [True] * 5 + [False] * 3
    assert model.calls == 3 and entries(path) == 5


def test_write_calls_every_time_and_records(path):
    filled(path, 5)
    model = Counting(text="fresh")
    out = Sampler(model, cache=ResponseCache(path, "write")).draw(requests(8))
    assert model.calls == 8 and not any(s.cached for s in out)
    assert entries(path) == 8
    replay = Sampler(Counting(), cache=ResponseCache(path, "read")).draw(requests(8))
    assert all(s.cached and s.output == "fresh" for s in replay)  # write refreshed the old entries


def test_readwrite_replays_hits_and_records_misses(path):
    filled(path, 5)
    model = Counting()
    out = Sampler(model, cache=ResponseCache(path, "readwrite")).draw(requests(8))
    assert [s.cached for s in out] == [True] * 5 + [False] * 3
    assert model.calls == 3 and entries(path) == 8


def test_open_cache_is_one_object_per_file_and_mode_and_needs_a_path(path):
    assert open_cache("readwrite", path) is open_cache("readwrite", str(path))
    assert open_cache("read", path) is not open_cache("readwrite", path)
    assert open_cache("off", path) is None and open_cache("readwrite", None) is None
    with pytest.raises(ConfigError, match="expected one of off, read, write, readwrite"):
        open_cache("sometimes", path)


# --- what is never cached ----------------------------------------------------------------


def test_models_that_cannot_be_named_are_never_cached(path):
    sim = FunctionModel(lambda text, rng: "yes")
    assert Sampler(sim, cache=ResponseCache(path)).cache is None
    r = Session(model=sim, cache_path=str(path)).sample(P, CASES).evaluate(checks.exact("yes"), at_least=0.9)
    assert r.calls > 0 and r.replayed == 0 and not path.exists()


class Failing(Counting):
    """Fails permanently (a 400 is not retried) until it has recovered."""

    async def generate(self, messages, *, seed):
        self.calls += 1
        if self.text != "recovered":
            raise type("BadRequestError", (Exception,), {"status_code": 400})("bad request")
        return Completion("ok")


def test_errors_are_never_cached(path):
    model = Failing()
    out = Sampler(model, cache=ResponseCache(path), retries=0).draw(requests(3))
    assert all(s.error for s in out) and not path.exists()
    model.text = "recovered"
    out = Sampler(model, cache=ResponseCache(path), retries=0).draw(requests(3))
    assert all(s.output == "ok" and not s.cached for s in out) and entries(path) == 3


def test_a_broken_cache_file_warns_and_samples_without_it(path):
    path.parent.mkdir(parents=True)
    path.write_text("not a database, just text " * 100)
    model = Counting()
    with pytest.warns(RuntimeWarning, match=r"cache\.sqlite cannot be used .*sampling without the response cache"):
        out = Sampler(model, cache=ResponseCache(path)).draw(requests(3))
    assert model.calls == 3 and not any(s.cached for s in out)


# --- statistics and cost -----------------------------------------------------------------


def test_a_replayed_sample_counts_for_the_verdict_and_costs_nothing(path):
    def run(model):
        session = Session(model=model, cache_path=str(path), price="1.0,2.0", seed=7)
        return session.sample(P, CASES).evaluate(checks.json_valid(), at_least=0.8)

    live = Counting(p=0.9)
    first = run(live)
    assert first.calls > 0 and first.replayed == 0 and first.cost_usd > 0 and live.calls == first.calls
    replay = Counting(p=0.9)
    second = run(replay)
    assert replay.calls == 0
    assert (second.verdict, second.k, second.n, second.cases) == (first.verdict, first.k, first.n, first.cases)
    assert second.calls == 0 and second.replayed == first.n
    assert second.cost_usd == 0 and second.input_tokens == second.output_tokens == 0
    assert second.latency_p50 == first.latency_p50  # latency of the original calls
    other = Session(model=Counting(p=0.9), cache_path=str(path), seed=8).sample(P, CASES)
    assert other.evaluate(checks.json_valid(), at_least=0.8).replayed == 0  # another seed: other draws


# --- several processes on one file (pytest-xdist) ------------------------------------------

WRITER = """
import sys, time
from llmops.cache import ResponseCache, Response
cache = ResponseCache(sys.argv[1])
name = sys.argv[2]
for batch in range(60):
    cache.put_many(name, [(f"{name}-{batch}-{i}", Response(f"{name} {batch} {i}", 1, 1, 0.1)) for i in range(10)])
    assert len(cache.get_many([f"{name}-{batch}-{i}" for i in range(10)])) == 10
"""


def test_two_processes_write_one_file_at_once(path):
    ResponseCache(path).put_many("parent", [("parent-0", _response("p"))])  # the file exists, in WAL mode
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name], stderr=subprocess.PIPE, text=True)
        for name in ("w1", "w2", "w3")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert entries(path) == 3 * 600 + 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    got = ResponseCache(path).get_many(["w1-59-9", "w2-0-0", "w3-30-5", "parent-0"])
    assert got["w2-0-0"].output == "w2 0 0" and len(got) == 4


def _response(text: str):
    from llmops.cache import Response

    return Response(text, 1, 1, 0.1)


def test_threads_share_a_cache_with_a_connection_each(path):
    cache = ResponseCache(path)
    errors = []

    def work(t: int) -> None:
        try:
            for b in range(20):
                cache.put_many("m", [(f"{t}-{b}", _response(str(b)))])
                assert cache.get_many([f"{t}-{b}"])[f"{t}-{b}"].output == str(b)
        except Exception as e:  # pragma: no cover - the assertion below shows it
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and entries(path) == 80


# --- the plugin: a suite's second run makes no model call ------------------------------------

CONFTEST = """
import os, random, threading
import pytest
from llmops.models import Completion

_lock = threading.Lock()

class SimModel:
    \"\"\"Names its settings (so it is cached) and logs every call to a file.\"\"\"

    id = "sim:triage-1"
    identity = {"model": "triage-1", "temperature": 0.7}

    async def generate(self, messages, *, seed):
        with _lock, open(os.environ["CALL_LOG"], "a") as f:
            f.write("call\\n")
        text = messages[-1][1]
        rate = 0.97 if "#1" in text or "#3" in text else 0.85
        ok = random.Random(seed).random() < rate
        return Completion('{"category": "billing"}' if ok else "sorry", 50, 10)

@pytest.fixture
def llmops_model():
    return SimModel()
"""

SUITE = """
from llmops import Case, Prompt, checks

P = Prompt("triage", "Ticket #{n}: classify it")
CASES = [Case({"n": i}, id=f"t{i}") for i in range(4)]

def test_format(llmops):
    llmops.sample(P, CASES).expect(checks.json_valid(), at_least=0.8)

def test_strict(llmops):
    llmops.sample(P, CASES).expect(checks.json_valid(), at_least=0.99, tolerance=0.05)
"""


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """One directory of sequential designs for these suites: each is built once, not per run."""
    return tmp_path_factory.mktemp("designs")


@pytest.fixture
def suite(pytester, monkeypatch, designs):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    log = pytester.path / "calls.log"
    monkeypatch.setenv("CALL_LOG", str(log))
    monkeypatch.setenv("LLMOPS_CACHE_DIR", str(designs))
    return pytester, log


def _calls(log) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _results(pytester, name):
    return {r["test_id"]: r for r in json.loads((pytester.path / name).read_text())["results"]}


def _verdicts(results):
    return {t: (r["verdict"], r["k"], r["n"]) for t, r in results.items()}


def test_second_run_of_a_suite_makes_no_model_call_and_gives_the_same_verdicts(suite):
    pytester, log = suite
    first = pytester.runpytest("--llmops-report-json=first.json")
    first.assert_outcomes(passed=1, failed=1)
    made = _calls(log)
    assert made > 0 and (pytester.path / ".llmops" / "cache.sqlite").exists()  # under the rootdir by default

    second = pytester.runpytest("--llmops-report-json=second.json")
    second.assert_outcomes(passed=1, failed=1)
    assert _calls(log) == made  # no model call at all
    before, after = _results(pytester, "first.json"), _results(pytester, "second.json")
    assert _verdicts(after) == _verdicts(before)
    assert sum(r["calls"] for r in before.values()) == made
    assert all(r["calls"] == 0 and r["replayed"] > 0 and r["cost_usd"] in (0, None) for r in after.values())


def test_a_suite_under_xdist_fills_one_cache_that_a_later_run_replays(suite):
    pytester, log = suite
    pytester.runpytest("-n", "2", "--llmops-report-json=first.json").assert_outcomes(passed=1, failed=1)
    made = _calls(log)
    pytester.runpytest("--llmops-report-json=second.json").assert_outcomes(passed=1, failed=1)
    assert _calls(log) == made > 0
    assert _verdicts(_results(pytester, "second.json")) == _verdicts(_results(pytester, "first.json"))


def test_the_cache_setting_reaches_the_sampler(suite):
    pytester, log = suite
    pytester.runpytest("--llmops-cache=read").assert_outcomes(passed=1, failed=1)
    assert _calls(log) > 0 and not (pytester.path / ".llmops").exists()  # read never writes
    pytester.runpytest("--llmops-cache=write", "--llmops-cache-path=answers.sqlite").assert_outcomes(passed=1, failed=1)
    assert entries(pytester.path / "answers.sqlite") > 0


# --- a real LangChain chat model against a loopback OpenAI-compatible server ----------------


def _triage_reply(request) -> str:
    """Mostly the right JSON, now and then a refusal: answers vary from call to call."""
    return '{"category": "billing"}' if random.random() < 0.9 else "I cannot help with that."


def test_real_chat_openai_is_replayed_from_the_cache(path):
    from langchain_openai import ChatOpenAI

    clients = []

    def run(server, temperature: float):
        chat = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=server.base_url,
            api_key="sk-test-not-a-real-key",
            temperature=temperature,
            max_retries=0,
        )
        clients.append(chat)
        session = Session(model=chat, cache_path=str(path), price="0.15,0.60", retries=0)
        return session.sample(P, CASES).evaluate(checks.json_valid(), at_least=0.8)

    with FakeOpenAI(_triage_reply) as server:
        server.queue("500", "500")  # two calls fail: errors, never cached
        first = run(server, 0.7)
        assert first.calls == server.requests > 0 and first.replayed == 0 and first.cost_usd > 0
        assert first.model_errors == 2 and entries(path) == first.calls - 2
        second = run(server, 0.7)
        # Only what the cache does not hold reaches the server: the two that failed, and any
        # samples beyond the first run's (their outcomes now count, so the test may go further).
        assert server.requests == first.calls + second.calls and second.calls >= 1
        assert second.model_errors == 0 and second.replayed > 0 and second.replayed + second.calls >= second.n
        seen = server.requests
        third = run(server, 0.7)
        assert server.requests == seen and third.calls == 0 and third.cost_usd == 0
        assert third.verdict == second.verdict and third.n == second.n and third.k == second.k
        other = run(server, 0.2)  # another temperature is another model: nothing to replay
        assert other.replayed == 0 and other.calls > 0
        # Close the pooled connections on the loop that opened them (one client per base URL).
        run_sync(clients[-1].root_async_client.close())
    assert b"sk-test-not-a-real-key" not in path.read_bytes()


# --- llmops cache stats | clear | prune ------------------------------------------------------


def test_stats_clear_and_prune(path, capsys):
    cache = ResponseCache(path)
    now = time.time()
    cache.put_many("openai:gpt-4o-mini", [(f"old{i}", _response("x")) for i in range(3)], now=now - 10 * 86400)
    cache.put_many("openai:gpt-4o-mini", [(f"mid{i}", _response("x")) for i in range(2)], now=now - 2 * 86400)
    cache.put_many("local:smollm2", [(f"new{i}", _response("x")) for i in range(4)], now=now - 60)

    assert main(["stats", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "9 responses from 2 models" in out and "oldest 10d ago, newest 1m ago" in out

    assert main(["prune", "--older-than", "7d", "--path", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: removed 3 responses older than 7d; 6 left\n"
    assert main(["prune", "--older-than", "1d12h", "--path", str(path)]) == 0
    assert "removed 2 responses older than 1d12h; 4 left" in capsys.readouterr().out

    assert main(["clear", "--path", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: removed 4 responses\n"
    main(["stats", "--path", str(path)])
    assert "0 responses from 0 models" in capsys.readouterr().out


def test_cache_command_errors_are_one_line(path, tmp_path, capsys):
    assert main(["prune", "--older-than", "7 days", "--path", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "llmops cache prune: --older-than: expected a duration such as 7d" in err

    assert main(["stats", "--path", str(tmp_path / "none.sqlite")]) == 0
    assert "no response cache yet (0 responses)" in capsys.readouterr().out
    assert not (tmp_path / "none.sqlite").exists()

    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database " * 100)
    assert main(["clear", "--path", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("llmops cache clear: response cache") and "delete the file" in err


def test_durations():
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("2w") == 14 * 86400
    for bad in ("", "7", "d", "7 days", "-1d", "7d!"):
        with pytest.raises(ConfigError, match="expected a duration"):
            parse_duration(bad)


def test_add_cli_registers_the_cache_command():
    import argparse

    from llmops.cache import add_cli

    parser = argparse.ArgumentParser(prog="llmops")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", "prune", "--older-than", "12h"])
    assert args.command == "cache" and args.cache_command == "prune" and args.older_than == "12h"
    assert callable(args.fn)
