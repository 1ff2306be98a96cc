"""When a test's gate fails, search for a better prompt: the wiring between a Session and ``optimize``.

Called after the test, in the process that ran it, with everything the test declared: each
run's prompt, cases, model, requirements and (when the session compares) the baseline prompt.
The test's own verdict is never changed and the user's files are never written: the
candidate goes to ``.llmops/candidates/<prompt>.txt`` and into the session record, whose
reports show it as a diff with its held-out numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.config import Settings
from llmops.evaluation import FAIL, Run
from llmops.optimize.problem import Budget, Problem
from llmops.optimize.proposers import DiffSearch, FewShot, ReflectiveRewrite
from llmops.optimize.search import optimize, write_candidate


def triggered(run: Run, mode: str) -> bool:
    """Whether this run's results call for a search: a regression, or (on-fail) a FAIL too."""
    if mode == "off" or not run.results:
        return False
    regressed = any(r.regressed for r in run.results)
    return regressed or (mode == "on-fail" and any(r.verdict == FAIL for r in run.results))


def search(
    run: Run, directory: Path, *, proposer_model: Any = None, max_calls: int = Settings.optimizer_budget
) -> dict[str, Any]:
    """Optimize one run's prompt; returns the record's ``candidates`` entry (always, for the report).

    ``max_calls``: the calls to the model under test the search may spend, its final scoring on
    the test split included (the test's own calls are not counted; ``--llmops-optimizer-budget``).
    """
    from llmops.models import resolve_model

    base = run.baseline_prompt
    proposers: list[Any] = [
        FewShot(),
        ReflectiveRewrite(resolve_model(proposer_model) if proposer_model else run.model),
    ]
    if base is not None and base.version != run.prompt.version:
        proposers.insert(0, DiffSearch())
    problem = Problem.from_run(run, run.requirements, baseline=base)
    result = optimize(problem, proposers, budget=Budget(max_calls=max_calls))
    path = write_candidate(result, directory)
    entry: dict[str, Any] = {
        "prompt": run.prompt.name,
        "test_id": run.test_id,
        "incumbent_version": run.prompt.version,
        "message": result.summary(),
        "stopped_because": result.stopped_because,
        "calls": result.calls,
        "result": result.to_dict(),
    }
    if result.candidate is not None:
        entry.update(
            version=result.candidate.version,
            diff=result.diff,
            # Registered under this alias by the MLflow tracker at the session's end
            # (tracking.mlflow_store.log_candidate), when tracking is on.
            registry=f"prompts:/{run.prompt.name}@candidate",
            file=str(path),
            held_out=[
                {
                    "requirement": t.requirement,
                    "candidate": {"k": t.k, "n": t.n, "rate": t.rate, "interval": list(t.interval)},
                    "incumbent": {"rate": t.regressed_rate},
                    "difference": t.rate - t.regressed_rate,
                    "verdict": t.verdict,
                }
                for t in result.test_scores
            ],
        )
    return entry
