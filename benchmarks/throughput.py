"""Throughput: N samples through each system against one loopback server, whole process.

Every row is a fresh process that makes N = 1000 chat completions at concurrency 32 against
benchmarks/loopback.py with a fixed latency of 100 ms (ideal: N / 32 x 0.1 s = 3.1 s):

- bare httpx: an asyncio loop of ``httpx.AsyncClient.post`` under a semaphore;
- bare LangChain: the same loop over ``ChatOpenAI.ainvoke`` (what llmops calls);
- llmops: a pytest session with one test whose requirement (valid JSON, at least 50%)
  decides in its first samples, then ``store_samples`` draws up to N (so all N go through
  llmops's draw path: cache lookup, budget, progress, results), cache off; tracking off, tracking
  on into a local MLflow store that exists already, and into a new one;
- promptfoo ``eval --repeat N -j 32 --no-cache`` with an ``is-json`` assertion;
- inspect_ai ``eval`` of N samples with ``--max-connections 32``, ``generate()`` and a
  ``match`` scorer.

Rounds are paired: each round runs every row once, in the same order, on the same server,
and a row's ratio is its wall time over bare httpx's in the same round.  The table shows
medians over the rounds.  ``calls`` is what the server counted for the row (a check that
every system really made N calls).  Also printed: the import cost of the pytest plugin
(what every pytest run on a machine with llmops installed pays) and ``pytest --help`` in a
project without llmops tests.

    .venv/bin/python benchmarks/throughput.py            # about 5 minutes; installs the peers once
    .venv/bin/python benchmarks/throughput.py --rounds 1 --no-peers
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    LANGCHAIN_CONFTEST,
    PYTHON,
    ROOT,
    bench_env,
    inspect_ai,
    loopback,
    machine,
    measure,
    median,
    promptfoo,
    promptfoo_config,
    served,
    table,
)

TEST = """
import os
from llmops import Prompt, checks

PROMPT = Prompt("bench", "Reply in JSON to: {question}")

def test_throughput(llmops):
    run = llmops.sample(PROMPT, {"question": "are you there?"}, store_samples=int(os.environ["BENCH_N"]))
    run.expect(checks.json_valid(), at_least=0.5)
"""

INSPECT_TASK = """
import os
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate

@task
def throughput():
    n = int(os.environ["BENCH_N"])
    dataset = [Sample(input="Reply in JSON to: are you there?", target="ok", id=i) for i in range(n)]
    return Task(dataset=dataset, solver=generate(), scorer=match(location="any"))
"""


async def bare_httpx(url: str, n: int, c: int) -> None:
    import httpx

    gate = asyncio.Semaphore(c)
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "Reply in JSON to: are you there?"}]}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=c)) as client:

        async def one() -> str:
            async with gate:
                r = await client.post("/chat/completions", json=body, headers={"Authorization": "Bearer sk-bench"})
                return str(r.json()["choices"][0]["message"]["content"])

        await asyncio.gather(*(one() for _ in range(n)))


async def bare_langchain(url: str, n: int, c: int) -> None:
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-test", base_url=url, api_key="sk-bench", max_retries=0)  # type: ignore[arg-type]
    gate = asyncio.Semaphore(c)

    async def one() -> str:
        async with gate:
            return str((await model.ainvoke("Reply in JSON to: are you there?")).content)

    await asyncio.gather(*(one() for _ in range(n)))


def import_cost() -> str:
    """``python -X importtime -c 'import pytest_plugin.plugin'``: the plugin's own share, and pytest --help."""
    out = measure([PYTHON, "-X", "importtime", "-c", "import pytest_plugin.plugin"], env=bench_env()).output
    cumulative = {}
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            cumulative[m.group(4)] = int(m.group(2))
    plugin, pytest_ = cumulative.get("pytest_plugin.plugin", 0), cumulative.get("pytest", 0)
    heavy = [
        m
        for m in ("mlflow", "langchain_core", "scipy", "numpy", "pandas", "httpx", "llmops.sampling")
        if m in cumulative
    ]
    empty = Path(tempfile.mkdtemp(prefix="llmops-help-"))
    (empty / "pytest.ini").write_text("[pytest]\n")
    helps = {}
    for label, extra in (("with llmops", []), ("without llmops (-p no:llmops)", ["-p", "no:llmops"])):
        helps[label] = median(
            [measure([PYTHON, "-m", "pytest", "--help", *extra], cwd=empty, env=bench_env()).wall for _ in range(3)]
        )
    return (
        f"- `import pytest_plugin.plugin`: {(plugin - pytest_) / 1000:.1f} ms of its own on top of pytest's "
        f"{pytest_ / 1000:.0f} ms (python -X importtime, cumulative); heavy modules imported: {', '.join(heavy) or 'none'}\n"
        + "\n".join(
            f"- `pytest --help` in a project without llmops tests, {k}: {v:.2f} s (median of 3)"
            for k, v in helps.items()
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--latency", default="0.1")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-peers", action="store_true", help="skip promptfoo and inspect_ai")
    p.add_argument("--bare", choices=("httpx", "langchain"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare:
        asyncio.run({"httpx": bare_httpx, "langchain": bare_langchain}[args.bare](args.url, args.n, args.concurrency))
        return
    n, c = args.n, args.concurrency
    work = Path(tempfile.mkdtemp(prefix="llmops-throughput-"))
    project = work / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(LANGCHAIN_CONFTEST)
    (project / "test_throughput.py").write_text(TEST)
    me = str(Path(__file__).resolve())
    pytest_cmd = [
        PYTHON,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--llmops-cache",
        "off",
        f"--llmops-concurrency={c}",
    ]
    peers = {}
    if not args.no_peers:
        peers["promptfoo"], peers["inspect"] = promptfoo(), inspect_ai()
    versions = [v for _, v in peers.values()]

    with loopback(args.latency) as url:
        env = bench_env(BENCH_BASE_URL=url, BENCH_N=str(n), OPENAI_BASE_URL=url)
        rows: dict[str, tuple[list[str] | None, Path | None, str]] = {
            "bare httpx asyncio loop": (
                [PYTHON, me, "--bare", "httpx", "--url", url, "-n", str(n), "-c", str(c)],
                None,
                "",
            ),
            "bare LangChain `ChatOpenAI.ainvoke` loop": (
                [PYTHON, me, "--bare", "langchain", "--url", url, "-n", str(n), "-c", str(c)],
                None,
                "",
            ),
            "llmops, tracking off": ([*pytest_cmd, "--llmops-tracking", "off"], project, ""),
            "llmops, tracking on, existing local store": ([*pytest_cmd, "--llmops-tracking", "on"], project, "warm"),
            "llmops, tracking on, new local store": ([*pytest_cmd, "--llmops-tracking", "on"], None, "new"),
        }
        if "promptfoo" in peers:
            cmd, version = peers["promptfoo"]
            config = work / "promptfooconfig.yaml"
            config.write_text(promptfoo_config(url, ["are you there?"]))
            (work / "promptfoo-home").mkdir()
            env["PROMPTFOO_CONFIG_DIR"] = str(work / "promptfoo-home")
            run = cmd and [
                *cmd,
                "eval",
                "-c",
                str(config),
                "--repeat",
                str(n),
                "-j",
                str(c),
                "--no-cache",
                "--no-progress-bar",
                "--no-table",
            ]
            rows[f"{version} (`--repeat {n} -j {c} --no-cache`)"] = (run, work, version)
        if "inspect" in peers:
            cmd, version = peers["inspect"]
            task = work / "inspect_task.py"
            task.write_text(INSPECT_TASK)
            run = cmd and [
                *cmd,
                "eval",
                task.name,  # inspect takes a relative path (it globs it), from the work folder
                "--model",
                "openai/gpt-test",
                "--max-connections",
                str(c),
                "--display",
                "none",
                "--log-dir",
                str(work / "inspect-logs"),
                "--max-retries",
                "0",
            ]
            rows[f"{version} (`--max-connections {c}`)"] = (run, work, version)
        if not (project / "mlruns").exists():  # the "existing store" rows find one already there
            measure([*pytest_cmd, "--llmops-tracking", "on"], cwd=project, env=env)

        walls: dict[str, list[float]] = {k: [] for k in rows}
        ratios: dict[str, list[float]] = {k: [] for k in rows}
        rss: dict[str, list[float]] = {k: [] for k in rows}
        calls: dict[str, list[int]] = {k: [] for k in rows}
        failed: dict[str, str] = {}
        for r in range(args.rounds):
            base = None
            for label, (cmd, cwd, kind) in rows.items():
                if cmd is None or label in failed:
                    continue
                if kind == "new":
                    cwd = work / f"new-{r}"
                    cwd.mkdir()
                    for f in ("pytest.ini", "conftest.py", "test_throughput.py"):
                        (cwd / f).write_text((project / f).read_text())
                before = served(url)
                m = measure(cmd, cwd=cwd, env=env)
                made = served(url) - before
                if m.returncode != 0:
                    failed[label] = f"exit {m.returncode}: " + " ".join(m.output.strip().splitlines()[-3:])[:300]
                    continue
                base = m.wall if base is None else base
                walls[label].append(m.wall)
                ratios[label].append(m.wall / base)
                rss[label].append(m.rss_mb)
                calls[label].append(made)
                print(
                    f"round {r + 1}: {label}: {m.wall:.2f} s, {m.rss_mb:.0f} MB, {made} calls",
                    file=sys.stderr,
                    flush=True,
                )

    out = []
    for label, (cmd, _, _kind) in rows.items():
        if cmd is None:
            out.append([label, "cannot run here", "", "", ""])
        elif label in failed:
            out.append([label, f"failed: {failed[label]}", "", "", ""])
        else:
            out.append(
                [
                    label,
                    f"{median(walls[label]):.2f} s",
                    f"{median(ratios[label]):.2f}",
                    f"{median(rss[label]):.0f} MB",
                    median(calls[label]),
                ]
            )
    print(
        f"## Throughput: N={n}, concurrency {c}, latency {args.latency} s (ideal {n / c * float(args.latency or 0) if args.latency.replace('.', '').isdigit() else float('nan'):.1f} s)\n"
    )
    print(f"{machine()}; median of {args.rounds} paired rounds; peers: {', '.join(versions) or 'not run'}\n")
    print(table(["system", "wall", "x bare httpx", "peak RSS", "calls"], [r[:5] for r in out]))
    print()
    print(import_cost())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    started = time.time()
    main()
    print(f"\n(benchmark took {time.time() - started:.0f} s)", file=sys.stderr)
