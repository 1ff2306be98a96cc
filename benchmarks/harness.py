"""What the speed benchmarks share: the loopback server, whole-process measurement, the peers.

- ``loopback(latency)``: benchmarks/loopback.py in its own process; yields its base URL.
- ``measure(cmd)``: wall time and peak RSS of one process (``os.wait4``: that process's own
  high-water mark, not its parent's).
- ``promptfoo()`` / ``inspect_ai()``: the peers, installed on first use into
  benchmarks/.peers (gitignored; never by ``make test``): promptfoo with npm (it needs Node
  >= 20), inspect_ai in its own virtualenv.  Each returns (command, version) or (None, why not).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".peers"
PROMPTFOO_VERSION = "0.118.17"
INSPECT_VERSION = "0.3.285"
PYTHON = sys.executable


#: conftest.py of a benchmark project: a real LangChain ChatOpenAI against the loopback server.
LANGCHAIN_CONFTEST = """
import os
import pytest

@pytest.fixture
def llmops_model():
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="gpt-test", base_url=os.environ["BENCH_BASE_URL"], api_key="sk-bench", max_retries=0)
"""


def promptfoo_config(url: str, questions: Sequence[str]) -> str:
    """promptfoo's config for the benchmarks' prompt: the loopback provider, is-json, one test per question."""
    head = (
        'prompts:\n  - "Reply in JSON to: {{question}}"\n'
        f"providers:\n  - id: openai:chat:gpt-test\n    config:\n      apiBaseUrl: {url}\n      apiKey: sk-bench\n"
        "defaultTest:\n  assert:\n    - type: is-json\ntests:\n"
    )
    return head + "".join(f"  - vars:\n      question: {q}\n" for q in questions)


@contextlib.contextmanager
def loopback(latency: str, seed: int = 0, valid_rate: float = 1.0) -> Iterator[str]:
    """The loopback OpenAI-compatible server (its own process); yields its base URL (.../v1)."""
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "loopback.py"), "--latency", latency, "--seed", str(seed), "--valid-rate", str(valid_rate)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line[:1] != ["PORT"]:
            raise RuntimeError(f"loopback server did not start: {line}")
        yield f"http://127.0.0.1:{line[1]}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def served(base_url: str) -> int:
    """Completions the loopback server has answered so far."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return int(json.load(r)["served"])


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds, the whole process
    rss_mb: float  # peak resident set of the process
    returncode: int
    output: str


def measure(
    cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> Measured:
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Measured(wall, usage.ru_maxrss / 1024, proc.returncode, out.read())


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for a measured process: no proxies, no telemetry, nothing of the user's tracking."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("MLFLOW_")}
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        PROMPTFOO_DISABLE_TELEMETRY="1",
        PROMPTFOO_DISABLE_UPDATE="1",
        PROMPTFOO_SELF_HOSTED="1",
        OPENAI_API_KEY="sk-bench",
        PYTHONDONTWRITEBYTECODE="0",
    )
    env.update(extra)
    return env


def _run(
    cmd: Sequence[str], cwd: Path | None = None, timeout: float = 1200, env: dict[str, str] | None = None
) -> tuple[int, str]:
    p = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, (p.stdout + p.stderr).strip()


def promptfoo() -> tuple[list[str] | None, str]:
    """The promptfoo command (installed with npm on first use), and its version or why it cannot run."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node and npm are not installed"
    code, version = _run([node, "--version"])
    if code or int(version.lstrip("v").split(".")[0]) < 20:
        return None, f"promptfoo {PROMPTFOO_VERSION} needs Node >= 20, this machine has {version}"
    folder = PEERS / "promptfoo"
    main = folder / "node_modules" / "promptfoo" / "package.json"
    if not main.exists():
        folder.mkdir(parents=True, exist_ok=True)
        # No browser download (there is no network but the registries; promptfoo's eval needs none).
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "PUPPETEER_SKIP_DOWNLOAD": "1"}
        npm_install = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"promptfoo@{PROMPTFOO_VERSION}"]
        code, out = _run(npm_install, folder, env=env)
        if code:
            return None, f"npm install promptfoo@{PROMPTFOO_VERSION} failed: {out.splitlines()[-1] if out else code}"
    version = json.loads(main.read_text())["version"]
    return [node, str(folder / "node_modules" / ".bin" / "promptfoo")], f"promptfoo {version}"


def inspect_ai() -> tuple[list[str] | None, str]:
    """The inspect command (its own virtualenv, made on first use), and its version or why it cannot run."""
    venv = PEERS / "inspect"
    exe = venv / "bin" / "inspect"
    if not exe.exists():
        code, out = _run([PYTHON, "-m", "venv", str(venv)])
        if not code:
            code, out = _run([str(venv / "bin" / "pip"), "install", "-q", f"inspect_ai=={INSPECT_VERSION}", "openai"])
        if code or not exe.exists():
            return None, f"pip install inspect_ai=={INSPECT_VERSION} failed: {out.splitlines()[-1] if out else code}"
    code, version = _run([str(venv / "bin" / "python"), "-c", "import inspect_ai; print(inspect_ai.__version__)"])
    if code:
        return None, f"inspect_ai does not import: {version.splitlines()[-1]}"
    return [str(exe)], f"inspect_ai {version}"


def machine() -> str:
    """CPU, cores, Python: the line RESULTS.md starts a table with."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


#: The rate at which "at least 90%" (tested against 80%) has no drift: the SPRT's log-likelihood
#: ratio gains log(0.9/0.8) per pass and loses log(0.2/0.1) per failure.
UNDECIDED_RATE = 0.8553


class PatternModel:
    """An in-process model that answers at once: valid JSON on a fixed fraction of calls, in the
    evenest pattern (call k is valid when floor((k + 1) * rate) > floor(k * rate)).

    At ``UNDECIDED_RATE`` the sequential test of "at least 90%" stays undecided until its
    cap, so a benchmark knows how many samples each requirement looks at.  Calls start in
    stream order, so the pattern is the stream's.
    """

    def __init__(self, rate: float = UNDECIDED_RATE) -> None:
        self.id = "pattern"
        self.rate = rate
        self.calls = 0

    async def generate(self, messages: object, *, seed: int) -> object:
        from llmops.models import Completion

        k, self.calls = self.calls, self.calls + 1
        valid = int((k + 1) * self.rate) > int(k * self.rate)
        return Completion('{"answer": "ok"}' if valid else "not json", 3, 2)
