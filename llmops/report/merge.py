"""Shards: session records from several CI jobs merged into one record and one verdict.

A suite split across jobs (a CI matrix, pytest-xdist within each) writes one record per job
(``--llmops-report-json``).  Merged, they are one session: one verdict, one PR comment, one
MLflow run.  Shards must come from the same commit (else the verdict would speak about no
commit in particular), and each requirement must have run in exactly one shard.  A
requirement the baseline has and no shard evaluated is ``missing`` here, since a single
shard cannot know what the others ran.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError

FAILING_VERDICTS = ("FAIL", "ERROR")


def load_record(path: Path) -> dict[str, Any]:
    """A session record written by ``--llmops-report-json``, checked for its shape."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"results file {path} does not exist; write one with pytest --llmops-report-json") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"results file {path} is not readable JSON ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("results"), list) or "session_id" not in record:
        raise ConfigError(f"{path} is not an llmops results file (written by pytest --llmops-report-json)")
    from llmops.report.json import check_version

    check_version(record, f"results file {path}")
    return record


def result_key(result: dict[str, Any]) -> str:
    """What identifies a requirement across shards (the baseline's key when there is one)."""
    if result.get("key"):
        return str(result["key"])
    return "|".join(
        str(result.get(k, "")) for k in ("test_id", "prompt", "check", "check_params", "direction", "threshold")
    )


def merge(shards: Sequence[tuple[str, dict[str, Any]]], *, force: bool = False) -> dict[str, Any]:
    """One record from the shards' records, given as (label, record) pairs.

    The merged record has a fresh session id (so MLflow logs it once, as a new run) and the
    shards' git info.  Shards from different commits are refused unless ``force``; a
    requirement present in two shards is always an error (it would be counted twice).
    """
    if not shards:
        raise ConfigError("no shard results to merge; pass the results-*.json files the shard jobs wrote")
    commits: dict[str, list[str]] = defaultdict(list)
    for label, record in shards:
        commit = (record.get("git") or {}).get("commit")
        if commit:
            commits[commit].append(label)
    if len(commits) > 1 and not force:
        detail = "; ".join(f"{c[:12]}: {', '.join(labels)}" for c, labels in commits.items())
        raise ConfigError(
            f"shards come from different commits ({detail}); merge shards of one workflow run, or pass --force"
        )

    seen: dict[str, list[str]] = defaultdict(list)
    for label, record in shards:
        for r in record["results"]:
            seen[result_key(r)].append(label)
    duplicates = {k: labels for k, labels in seen.items() if len(labels) > 1}
    if duplicates:
        lines = [f"{_requirement(k)} in {', '.join(labels)}" for k, labels in sorted(duplicates.items())]
        raise ConfigError(
            f"{len(duplicates)} requirement(s) ran in more than one shard, so they would be counted twice: "
            + "; ".join(lines[:5])
            + ("; ..." if len(lines) > 5 else "")
            + ". Give each shard its own tests (paths or -k), or merge the files of one run only"
        )

    first = shards[0][1]
    results = [r for _, record in shards for r in record["results"]]
    keys = {result_key(r) for r in results}
    merged: dict[str, Any] = {
        "session_id": uuid.uuid4().hex,
        "started": min(int(rec.get("started") or 0) for _, rec in shards) or int(1000 * time.time()),
        "finished": max(int(rec.get("finished") or 0) for _, rec in shards) or int(1000 * time.time()),
        "llmops_version": first.get("llmops_version"),
        "settings": _settings([rec.get("settings") or {} for _, rec in shards]),
        "git": dict(first.get("git") or {}),
        "results": results,
        "outcome": _outcome(shards, results),
        "shards": [
            {
                "file": label,
                "session_id": rec.get("session_id"),
                "commit": (rec.get("git") or {}).get("commit"),
                "results": len(rec["results"]),
            }
            for label, rec in shards
        ],
    }
    missing = _missing_from_shards([rec for _, rec in shards], keys)
    if missing:
        merged["missing"] = missing
    for field_name in ("test_errors", "candidates"):
        items = [item for _, rec in shards for item in rec.get(field_name) or []]
        if items:
            merged[field_name] = items
    return merged


def _outcome(shards: Sequence[tuple[str, dict[str, Any]]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """How the merged session ended: the worst pytest exit status of the shards, and which were partial."""
    counts = {v: sum(r.get("verdict") == v for r in results) for v in ("PASS", "FAIL", "ERROR")}
    regressed = sum((r.get("comparison") or {}).get("verdict") == "regressed" for r in results)
    statuses = [(rec.get("outcome") or {}).get("exit_status") for _, rec in shards]
    known = [s for s in statuses if isinstance(s, int)]
    bad = [s for s in known if s not in (0, 5)]  # 5: that shard collected no tests
    status = max(bad) if bad else (0 if 0 in known else (5 if known else None))
    partial = [
        f"{label}: {rec['outcome']['partial']}" for label, rec in shards if (rec.get("outcome") or {}).get("partial")
    ]
    return {"counts": counts, "regressed": regressed, "exit_status": status, "partial": "; ".join(partial) or None}


def _settings(all_settings: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' settings; where they differ (each shard's report path), the distinct values."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(k for s in all_settings for k in s):
        values = [s.get(name) for s in all_settings]
        distinct = list({json.dumps(v, sort_keys=True, default=str): v for v in values}.values())
        out[name] = distinct[0] if len(distinct) == 1 else distinct
    return out


def _missing_from_shards(records: Iterable[dict[str, Any]], evaluated: set[str]) -> list[dict[str, Any]]:
    """Requirements some shard reports missing from the baseline that no shard evaluated."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        for item in record.get("missing") or []:
            entry = dict(item) if isinstance(item, dict) else {"key": str(item), "requirement": str(item)}
            key = str(entry.get("key") or entry.get("requirement"))
            if key not in evaluated:
                out.setdefault(key, entry)
    return list(out.values())


def add_missing(record: dict[str, Any], baseline: Any) -> dict[str, Any]:
    """The record with ``missing`` set from a baseline (``llmops.baseline.Baseline``)."""
    have = {str(m.get("key")) for m in record.get("missing") or []}
    extra = [
        {"key": e.key, "requirement": e.requirement, "baseline": baseline.label}
        for e in baseline.missing(result_key(r) for r in record["results"])
        if e.key not in have
    ]
    if not extra:
        return record
    return {**record, "missing": [*(record.get("missing") or []), *extra]}


def _requirement(key: str) -> str:
    """A readable requirement from its key: 'test_x: json_valid at_least 0.8'."""
    parts = key.split("|")
    if len(parts) >= 5:
        test, _, check, direction, threshold = parts[:5]
        return f"{test.split('::', 1)[-1]}: {check.split('{', 1)[0]} {direction} {threshold}"
    return key


@dataclass(frozen=True)
class Verdict:
    """The gate's verdict on a (merged) record: what passed, what failed, and why."""

    counts: dict[str, int]
    regressed: int
    missing: int
    reasons: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return bool(self.reasons)

    def line(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items() if n)
        extra = (f", {self.regressed} regressed" if self.regressed else "") + (
            f", {self.missing} missing" if self.missing else ""
        )
        word = "FAILED" if self.failed else "passed"
        return f"llmops gate {word}: {counts or 'no requirements'}{extra}"


def missing_allowed(record: dict[str, Any]) -> bool:
    """Whether the record's missing requirements pass: its ``allow_missing`` setting."""
    return (record.get("settings") or {}).get("allow_missing") is True


def verdict(record: dict[str, Any], *, allow_missing: bool | None = None) -> Verdict:
    """The gate fails on a FAIL or ERROR, a regression, an undecided comparison, a test that
    errored before any verdict, a missing requirement (unless allowed), or a pytest run that
    did not end cleanly (a plain test failed, a shard was interrupted)."""
    if allow_missing is None:
        allow_missing = missing_allowed(record)
    results = record.get("results") or []
    counts = {v: 0 for v in ("PASS", "FAIL", "ERROR")}
    reasons: list[str] = []
    regressed = 0
    for r in results:
        counts[r.get("verdict", "ERROR")] = counts.get(r.get("verdict", "ERROR"), 0) + 1
        name = _name(r)
        if r.get("verdict") in FAILING_VERDICTS:
            reasons.append(f"{r['verdict']} {name}")
        comparison = r.get("comparison") or {}
        if comparison.get("verdict") == "regressed":
            regressed += 1
            reasons.append(f"REGRESSED {name}")
        elif comparison.get("verdict") == "ERROR":
            reasons.append(f"baseline comparison undecided: {name}")
    for e in record.get("test_errors") or []:
        reasons.append(f"ERROR {str(e.get('test_id', '')).split('::', 1)[-1]}: {e.get('error')}: {e.get('message')}")
    missing = record.get("missing") or []
    if missing and not allow_missing:
        reasons += [
            f"MISSING {m.get('requirement') or m.get('key')}" if isinstance(m, dict) else f"MISSING {m}"
            for m in missing
        ]
    status = (record.get("outcome") or {}).get("exit_status")
    if status not in (None, 0, 5) and not reasons:
        reasons.append(f"pytest exited with status {status}: a test outside llmops failed, or the run was cut short")
    return Verdict(counts, regressed, len(missing), tuple(reasons))


def _name(r: dict[str, Any]) -> str:
    test = str(r.get("test_id", "")).split("::", 1)[-1] or "session"
    word = "at least" if r.get("direction") == "at_least" else "at most"
    return f"{test}: {r.get('description') or r.get('check')} {word} {r.get('threshold')}"


__all__ = ["Verdict", "add_missing", "load_record", "merge", "missing_allowed", "result_key", "verdict"]
