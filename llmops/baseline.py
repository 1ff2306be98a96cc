"""Baselines: where they live (an MLflow run, an alias, a results file) and what they hold.

A baseline is a session record, loaded once when the session starts (so a wrong alias or an
unreachable server is an error before any model call).  Each requirement in it is keyed by
test id, prompt, check with its arguments, direction and threshold, so two tests never
merge; its cases are keyed by content (inputs and expected), so a reordered case file still
pairs the same cases and an edited case is a new case.  The comparison itself runs inside
the test (``llmops.evaluation``); at the session's end, requirements the baseline has and
this session did not evaluate are reported (``missing``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError


def requirement_key(
    test_id: str, prompt: str, check: str, params: Mapping[str, Any], direction: str, threshold: float
) -> str:
    """What a baseline requirement is matched on."""
    args = json.dumps(params, sort_keys=True, default=str)
    return f"{test_id}|{prompt}|{check}{args}|{direction}|{threshold:g}"


@dataclass(frozen=True)
class Entry:
    """One requirement as the baseline saw it."""

    key: str
    test_id: str
    prompt: str
    version: str
    model: str
    description: str
    direction: str
    threshold: float
    template: tuple[tuple[str, str], ...]
    case_keys: tuple[str, ...]  # the cases of the baseline run, in its order
    trace: str  # outcome per stream position on the pass scale: 1 pass, 0 fail, e error
    trace_cases: tuple[int, ...]  # case position (into case_keys) per stream position
    rate: float
    verdict: str

    @property
    def requirement(self) -> str:
        word = "at least" if self.direction == "at_least" else "at most"
        return f"{self.test_id.split('::', 1)[-1]}: {self.description} {word} {self.threshold:g}"


@dataclass(frozen=True)
class Baseline:
    label: str  # where it came from, for messages: "@baseline (run 1a2b...)", "file x.json"
    entries: Mapping[str, Entry]

    def entry(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def missing(self, evaluated: Iterable[str]) -> list[Entry]:
        """Requirements in the baseline that this session did not evaluate."""
        seen = set(evaluated)
        return [e for k, e in self.entries.items() if k not in seen]


def from_record(record: Mapping[str, Any], label: str) -> Baseline:
    entries: dict[str, Entry] = {}
    for r in record.get("results", []):
        if "key" not in r:
            raise ConfigError(
                f"baseline {label} was written by an older llmops without requirement keys; promote a run made "
                "by this version (`pytest --llmops-promote baseline` on the main branch)"
            )
        cases = r.get("cases", [])
        entries[r["key"]] = Entry(
            key=r["key"],
            test_id=r.get("test_id", ""),
            prompt=r["prompt"],
            version=r["prompt_version"],
            model=r.get("model", ""),
            description=r.get("description", r.get("check", "")),
            direction=r["direction"],
            threshold=float(r["threshold"]),
            template=tuple((str(a), str(b)) for a, b in r.get("template", ())),
            case_keys=tuple(c.get("key", c["case_id"]) for c in cases),
            trace=r.get("trace", ""),
            trace_cases=tuple(r.get("trace_cases", ())),
            rate=float("nan") if r.get("rate") is None else float(r["rate"]),
            verdict=r.get("verdict", ""),
        )
    return Baseline(label, entries)


def load_baseline(spec: str, uri: str | None, experiment: str) -> Baseline:
    """A baseline from a results file, an MLflow run id, or an alias set by `llmops promote`."""
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise ConfigError(f"baseline file {path} does not exist; give a results .json, a run id or an alias")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"baseline file {path} is not a readable results .json ({e})") from None
        return from_record(record, f"file {path}")
    from llmops.tracking import quiet_mlflow
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    with quiet_mlflow():
        store = MlflowStore(tracking_uri(uri), experiment)
        store.check_reachable()
        run_id = store.resolve_alias(spec)
        if run_id is not None:
            return from_record(store.load_record(run_id), f"@{spec} (run {run_id})")
        try:
            return from_record(store.load_record(spec), f"run {spec}")
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(
                f"baseline {spec!r} is neither a results file, an alias in experiment '{experiment}' nor a run "
                f"id there ({str(e).splitlines()[0][:120]}); mark one with `llmops promote RUN_ID --alias {spec}`"
            ) from None
