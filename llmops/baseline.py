"""Baselines: where they live (an MLflow run, an alias, a results file) and the regression gate.

A baseline is a session record; what is compared is, for each requirement key (prompt,
check with its arguments, direction), the per-case counts on the pass-rate scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError
from llmops.evaluation import Result
from llmops.stats.compare import Comparison, compare_cases, holm


@dataclass
class Entry:
    prompt: str
    version: str
    description: str
    direction: str
    threshold: float
    cases: dict[str, tuple[int, int]] = field(default_factory=dict)  # case id -> (good, n)


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Entry]:
    """Per requirement key, per-case (good, n) counts, merged over tests that share the key."""
    out: dict[str, Entry] = {}
    for d in results:
        r = Result.from_dict(d) if isinstance(d, dict) else d
        if r.verdict == "ERROR":
            continue
        e = out.setdefault(r.key, Entry(r.prompt, r.prompt_version, r.description, r.direction, r.threshold))
        for c in r.paired or r.cases:
            good = c.k if r.direction == "at_least" else c.n - c.k
            g0, n0 = e.cases.get(c.case_id, (0, 0))
            e.cases[c.case_id] = (g0 + good, n0 + c.n)
    return out


def load_baseline(spec: str, uri: str | None, experiment: str) -> tuple[str, dict[str, Any]]:
    """A baseline record from a results file, an MLflow run id, or an alias set by `llmops promote`."""
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise ConfigError(f"baseline file {path} does not exist; give a results .json, a run id or an alias")
        return f"file {path}", dict(json.loads(path.read_text(encoding="utf-8")))
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    store = MlflowStore(tracking_uri(uri), experiment)
    store.check_reachable()
    run_id = store.resolve_alias(spec)
    if run_id is not None:
        return f"@{spec} (run {run_id})", store.load_record(run_id)
    try:
        return f"run {spec}", store.load_record(spec)
    except Exception as e:
        raise ConfigError(
            f"baseline {spec!r} is neither a results file, an alias in experiment '{experiment}' nor a run "
            f"id there ({str(e).splitlines()[0][:120]}); mark one with `llmops promote RUN_ID --alias {spec}`"
        ) from None


@dataclass(frozen=True)
class Verdict:
    key: str
    prompt: str
    description: str
    new_version: str
    base_version: str
    comparison: Comparison
    p_adjusted: float
    regressed: bool
    new_cases: int  # cases only in the new run: reported, not compared
    missing_cases: int  # cases only in the baseline
    message: str


@dataclass(frozen=True)
class Report:
    label: str
    verdicts: tuple[Verdict, ...]
    unmatched: tuple[str, ...]  # requirements with no baseline: new prompts or checks

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regressed]

    def lines(self) -> list[str]:
        out = [f"baseline {self.label}: {len(self.verdicts)} compared, {len(self.regressions)} regressed"]
        out += [("REGRESSION " if v.regressed else "ok ") + v.message for v in self.verdicts]
        out += [f"not compared (no baseline yet): {u}" for u in self.unmatched]
        return out


def compare(
    new: Iterable[dict[str, Any]], base: Iterable[dict[str, Any]], label: str, tolerance: float, alpha: float
) -> Report:
    """The regression gate: paired by case, Holm across the comparisons of this session.

    A regression is a drop that is significant at the false-alarm level after Holm and
    larger than half the tolerance (see llmops.stats.compare).
    """
    now, then = summarize(new), summarize(base)
    keys = [k for k in now if k in then and set(now[k].cases) & set(then[k].cases)]
    comps = [compare_cases(now[k].cases, then[k].cases) for k in keys]
    adjusted = holm([c.p_value for c in comps])
    verdicts = []
    for k, c, p in zip(keys, comps, adjusted, strict=True):
        e, b = now[k], then[k]
        regressed = p < alpha and c.difference < -tolerance / 2
        new_only = len(set(e.cases) - set(b.cases))
        missing = len(set(b.cases) - set(e.cases))
        lo, hi = c.interval
        moved = ", ".join(f"{cid} {d:+.0%}" for cid, d in c.moved[:3] if d < 0) or "none"
        extra = ""
        if new_only or missing:
            extra = f"; {new_only} new case(s) and {missing} baseline-only case(s) not compared"
        message = (
            f"{e.prompt} {b.version[:7]} -> {e.version[:7]}: {e.description} ({e.direction.replace('_', ' ')} "
            f"{e.threshold:g}) changed by {c.difference:+.1%} (95% interval {lo:+.1%} to {hi:+.1%}) over "
            f"{c.n_cases} paired case(s), {c.method}, one-sided p={c.p_value:.3g}, Holm-adjusted {p:.3g}; "
            f"cases that moved most: {moved}{extra}"
        )
        verdicts.append(
            Verdict(k, e.prompt, e.description, e.version, b.version, c, p, regressed, new_only, missing, message)
        )
    unmatched = tuple(
        f"{now[k].prompt}: {now[k].description} ({now[k].direction.replace('_', ' ')})" for k in now if k not in keys
    )
    return Report(label, tuple(verdicts), unmatched)
