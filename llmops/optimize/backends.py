"""Optional optimizer backends, re-scored by llmops on its own held-out test split.

``optimize_with_gepa(problem, reflection_model)`` runs GEPA (Agrawal et al. 2025; the
``gepa`` package, ``pip install 'llmops[gepa]'``) on the problem's training and validation
cases with the problem's model and checks, and a reflection model that is any llmops model
(a LangChain chat model, a "provider:model" string, a Python callable).  GEPA selects its
best candidate by its own score on the validation cases it searched with, an in-sample
number; llmops then scores that winner once on the test cases GEPA never saw, beside the
regressed prompt and the baseline, exactly as it scores its own search's winner
(``llmops.optimize.evaluate.score_test``), and returns an ``OptimizationResult``.

How GEPA sees the task: one component, ``"prompt"``, the template text (``Prompt.text``);
a data instance is a ``Case``; a metric call is one fresh sample of the candidate on that
case, scored 1 when it is good on every requirement (else 0), with the checks' reasons as
the feedback GEPA reflects on.  A candidate that adds or drops a template variable (or is
no valid template) scores 0 without a model call.  Every model call counts against
``Budget.max_calls`` (the test scoring reserved first, as in ``optimize``) and every
reflection call against ``Budget.max_proposer_calls``; GEPA stops when either would be
exceeded by another iteration.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from llmops.cases import Case
from llmops.errors import ConfigError, PromptError
from llmops.models import resolve_model
from llmops.optimize.evaluate import Evaluator, OutOfBudget
from llmops.optimize.problem import Budget, Problem, Search
from llmops.optimize.proposers import with_text
from llmops.optimize.search import OptimizationResult, Step, scored_result
from llmops.optimize.split import split_cases
from llmops.prompts import Prompt
from llmops.sampling import Request, Sampler

COMPONENT = "prompt"


def _require_gepa() -> Any:
    try:
        import gepa
    except ImportError:
        raise ConfigError(
            "the GEPA backend requires optional dependencies. Install with: pip install 'llmops[gepa]'"
        ) from None
    return gepa


class _Quiet:
    """GEPA's logger (``gepa.logging.logger.LoggerProtocol``): its per-iteration lines are not shown."""

    def log(self, message: str) -> None:
        pass


class _Adapter:
    """GEPA's adapter (``gepa.core.adapter.GEPAAdapter``) over an llmops Evaluator."""

    propose_new_texts = None  # GEPA's own reflective proposal, with the reflection model

    def __init__(self, problem: Problem, ev: Evaluator) -> None:
        self.problem = problem
        self.ev = ev
        self.drawn: Counter[tuple[str, str]] = Counter()  # (version, case) -> samples drawn by GEPA
        self.prompts: dict[str, Prompt] = {}  # GEPA text -> candidate
        self.invalid = 0

    def prompt(self, text: str) -> Prompt | str:
        """The candidate for GEPA's text, or why it is not one."""
        regressed = self.problem.prompt
        try:
            cand = with_text(regressed, text)
        except (PromptError, ValueError, KeyError, IndexError) as e:
            return f"invalid template: {e}"
        if set(cand.variables) != set(regressed.variables):
            return "it adds or drops a template variable: keep " + ", ".join("{" + v + "}" for v in regressed.variables)
        self.prompts[text] = cand
        return cand

    def evaluate(self, batch: list[Case], candidate: dict[str, str], capture_traces: bool = False) -> Any:
        from gepa.core.adapter import EvaluationBatch

        cand = self.prompt(candidate[COMPONENT])
        if isinstance(cand, str):
            self.invalid += 1
            traces = [{"case": c, "output": None, "feedback": cand} for c in batch]
            return EvaluationBatch([None] * len(batch), [0.0] * len(batch), traces if capture_traces else None)
        slots = []
        for c in batch:
            key = (cand.version, c.key)
            slots.append((c, self.drawn[key]))  # a fresh sample per metric call
            self.drawn[key] += 1
        units = self.ev.units(cand, slots)
        scores = [1.0 if u.joint else 0.0 for u in units]
        traces = [
            {
                "case": c,
                "output": u.output,
                "feedback": "good on every requirement" if u.joint else "; ".join(u.reasons),
            }
            for c, u in zip(batch, units, strict=True)
        ]
        return EvaluationBatch([u.output for u in units], scores, traces if capture_traces else None)

    def make_reflective_dataset(
        self, candidate: dict[str, str], eval_batch: Any, components_to_update: list[str]
    ) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        rows = [
            {
                "Inputs": {v: str(t["case"].inputs.get(v)) for v in self.problem.prompt.variables},
                "Generated Outputs": t["output"] if t["output"] is not None else "(no output)",
                "Feedback": t["feedback"],
            }
            for t in eval_batch.trajectories or ()
        ]
        return {name: rows for name in components_to_update}


def optimize_with_gepa(
    problem: Problem,
    reflection_model: Any = None,
    *,
    budget: Budget | None = None,
    minibatch: int = 3,
    **options: Any,
) -> OptimizationResult:
    """Run GEPA on the problem and score its winner on llmops's held-out test split.

    ``reflection_model``: the model GEPA reflects with (default: the model under test).
    ``minibatch``: GEPA's reflection minibatch size.  ``options`` go to ``gepa.optimize``
    (e.g. ``candidate_selection_strategy``, ``use_merge``).  The result's ``trajectory``
    lists GEPA's candidates with GEPA's own (in-sample) validation score in ``validation``;
    ``test_scores`` and ``recovery`` are llmops's, on cases GEPA never saw.
    """
    gepa = _require_gepa()
    budget = budget or Budget()
    start = time.monotonic()
    split = split_cases(problem.cases, problem.seed)
    ev = Evaluator(problem, split, budget, Search(), start)
    ev.reserve_test_calls()
    adapter = _Adapter(problem, ev)
    reflection = resolve_model(reflection_model) if reflection_model is not None else problem.model_under_test
    sampler = Sampler(reflection, concurrency=1, timeout=problem.timeout, retries=problem.retries, seed=problem.seed)
    proposer_calls = 0
    unparsed = 0

    def reflect(prompt: str | list[dict[str, Any]]) -> str:
        nonlocal proposer_calls, unparsed
        text = prompt if isinstance(prompt, str) else "\n\n".join(str(m.get("content", "")) for m in prompt)
        (sample,) = sampler.draw([Request("gepa-reflection", proposer_calls, [("human", text)])], seed_key="gepa")
        proposer_calls += 1
        if sample.error is not None or sample.output is None:
            unparsed += 1
            return ""
        return sample.output

    per_iteration = 2 * minibatch + len(split.validation)  # parent and child on a minibatch, then validation

    def spent(_state: Any) -> bool:
        left = ev.budget_left
        calls_out = left is not None and left < per_iteration
        proposer_out = budget.max_proposer_calls is not None and proposer_calls >= budget.max_proposer_calls
        late = ev.deadline is not None and time.monotonic() > ev.deadline
        return calls_out or proposer_out or late

    stopped = "budget"
    try:
        found = gepa.optimize(
            seed_candidate={COMPONENT: problem.prompt.text},
            trainset=list(split.train),
            valset=list(split.validation),
            adapter=adapter,
            reflection_lm=reflect,
            reflection_minibatch_size=minibatch,
            stop_callbacks=[spent],
            seed=problem.seed,
            display_progress_bar=False,
            **{"logger": _Quiet(), **options},
        )
    except OutOfBudget:  # an iteration larger than foreseen; nothing of GEPA's state survives it
        found, stopped = None, "budget (mid-iteration)"
    texts: list[dict[str, str]] = list(found.candidates) if found is not None else []
    candidate: Prompt | None = None
    if found is not None:
        best = adapter.prompt(found.best_candidate[COMPONENT])
        if isinstance(best, Prompt) and best.version != problem.prompt.version:
            candidate = best
    trajectory = []
    for i, cand_map in enumerate(texts):
        p = adapter.prompts.get(cand_map[COMPONENT])
        if p is None:
            continue
        parents = [j for j in (found.parents[i] if found is not None else []) if j is not None]
        parent = adapter.prompts.get(texts[parents[0]][COMPONENT]) if parents else None
        trajectory.append(
            Step(
                version=p.version,
                parent=parent.version if parent is not None else None,
                proposer="gepa" if i else "regressed",
                round=i,
                status="regressed" if i == 0 else "gepa best" if found is not None and i == found.best_idx else "gepa",
                train=None,
                train_units=0,
                validation=found.val_aggregate_scores[i] if found is not None else None,
                validation_units=len(split.validation),
                calls=ev.calls_by_version[p.version],
                total_calls=0,
                note="validation: GEPA's own score on the cases it selected with (in-sample)",
            )
        )
    return scored_result(
        ev,
        candidate,
        trajectory=tuple(trajectory),
        stopped_because=stopped,
        stop_detail="model calls, reflection calls or wall time would run out",
        rounds=max(0, len(texts) - 1),
        proposer_calls=proposer_calls,
        rejected=tuple(("gepa", "adds or drops a variable, or no valid template") for _ in range(adapter.invalid)),
        unparsed=unparsed,
        duplicates=0,
        comparisons=0,
        alpha=float("nan"),  # no acceptance test: GEPA's winner is its in-sample best
        start=start,
        settings={
            "backend": "gepa",
            "gepa_version": getattr(gepa, "__version__", "?"),
            "minibatch": minibatch,
            "options": {k: repr(v) for k, v in options.items()},
            "budget": dict(budget.__dict__),
            "seed": problem.seed,
            "model": problem.model_under_test.id,
            "reflection_model": reflection.id,
            "test_units": len(ev.test_slots()),
        },
    )
