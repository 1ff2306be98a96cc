"""The optimizer on a simulated task with a known optimum (``llmops.optimize.simulate``).

A support-bot prompt regressed: two helpful instructions dropped, a harmful one added,
among harmless rewordings (8 sentence hunks).  The model is a seeded FunctionModel whose
chance of the right answer per case depends on which instructions the prompt holds (one
helps billing/shipping cases, one returns/account cases, one all, one hurts all) and on
demonstrations of the case's own group (+0.4 to the log-odds each, at most two; +1.2 in the
"demonstrations matter" row); so every candidate's true rate is known.  40 cases
(10 per group): 20 train, 10 validation, 10 test; requirement "exact answer at least 75%";
baseline about 85%, regressed about 23%.  ReflectiveRewrite runs on a scripted proposer
model: per candidate one edit, helpful 30%, neutral 40%, harmful 20%, a broken variable 5%,
an unparsable block 5%.

Per configuration, 20 seeds (the task's case difficulties, the split and every sample
change with the seed):

- recovery on test: the optimizer's own estimate on the held-out test split (120 samples
  per prompt), 0 when no candidate was accepted; "truth": the same ratio from the known
  true rates on the test cases;
- model calls (all of them, test scoring included) and the share spent racing on training
  cases, where racing and full evaluation differ;
- for DiffSearch: ddmin's evaluation rounds and whether it found exactly the hunks that
  matter (two dropped helpful lines, the added harmful one).

A budget sweep (racing against full evaluation of every candidate, all three proposers)
gives median recovery against the model-call budget.  The no-recovery variant (the
"regression" is harmless rewording, demonstrations do nothing: no candidate is truly
better) counts accepted candidates, and accepted candidates truly worse than the
regressed prompt on the test cases.

GEPA (``pip install 'llmops[gepa]'``; rows left out, with the import error, when it is not
installed) runs on the same task and split with the same model-call budget (3000) and the
scripted proposer as its reflection model, with unlimited and with 20 reflection calls, and
on the no-recovery variant; llmops scores GEPA's winner on the same held-out test split.

    .venv/bin/python benchmarks/optimizer.py              # 20 seeds (100 without recovery), ~10 min on 2 busy cores
    .venv/bin/python benchmarks/optimizer.py --seeds 5    # quick look

Writes the tables to benchmarks/results/optimizer.md as well.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from llmops.optimize import (
    Budget,
    DiffSearch,
    FewShot,
    OptimizationResult,
    Problem,
    ReflectiveRewrite,
    Search,
    TextDiff,
    optimize,
)
from llmops.optimize.simulate import HARM, HELP_A, HELP_B, SimulatedTask
from llmops.stats.intervals import clopper_pearson

TEST_UNITS = 120
MAX_CALLS = 10_000
PROPOSER_CALLS = 20
SWEEP = (1000, 1250, 1500, 2000, 2500, 3000, 4000, 6000)
CONFIGS = {
    "full evaluation, all three": ("regression", ("diff", "rewrite", "few-shot"), False),
    "racing, all three": ("regression", ("diff", "rewrite", "few-shot"), True),
    "racing, diff search alone": ("regression", ("diff",), True),
    "racing, reflective rewrite alone": ("regression", ("rewrite",), True),
    "racing, few-shot alone": ("regression", ("few-shot",), True),
    "racing, few-shot alone, demonstrations matter": ("demos", ("few-shot",), True),
    "no recovery possible, racing, all three": ("no-recovery", ("diff", "rewrite", "few-shot"), True),
}


def _problem(task: SimulatedTask, seed: int) -> Problem:
    return Problem(
        prompt=task.regressed,
        baseline=task.baseline,
        cases=task.cases,
        requirements=[task.requirement],
        model=task.model,
        seed=seed,
        concurrency=64,
        test_units=TEST_UNITS,
    )


def _outcome(task: SimulatedTask, result: OptimizationResult) -> dict[str, Any]:
    """Recovery on the test cases, estimated and true, and whether a truly worse candidate was proposed."""
    test = result.split.test
    r_true = task.true_rate(task.regressed, test)
    b_true = task.true_rate(task.baseline, test)
    c_true = task.true_rate(result.candidate, test) if result.candidate is not None else r_true
    estimate = result.recovery.value if result.recovery is not None else (0.0 if result.candidate is None else math.nan)
    return {
        "recovery": estimate,
        "true_recovery": (c_true - r_true) / (b_true - r_true) if b_true > r_true else math.nan,
        "accepted": result.candidate is not None,
        "truly_worse": result.candidate is not None and c_true < r_true - 1e-9,
        "calls": result.calls,
    }


def run(args: tuple[str, int, int]) -> dict[str, Any]:
    """One optimization; what the tables need."""
    name, seed, max_calls = args
    variant, names, racing = CONFIGS[name]
    # "demos": the same regression, but each demonstration of a case's own group adds 1.2 to
    # the log-odds (0.4 otherwise), so that few-shot examples can matter.
    task = SimulatedTask(seed, demo_effect=1.2) if variant == "demos" else SimulatedTask(seed, variant=variant)
    diff = DiffSearch()
    make = {"diff": lambda: diff, "rewrite": lambda: ReflectiveRewrite(task.rewriter()), "few-shot": FewShot}
    problem = _problem(task, seed)
    started = time.perf_counter()
    result = optimize(
        problem,
        [make[n]() for n in names],
        budget=Budget(max_calls=max_calls, max_proposer_calls=PROPOSER_CALLS),
        search=Search(racing=racing),
    )
    hunks = TextDiff(task.baseline, task.regressed).hunks
    culprits = {h.index for h in hunks if HARM.text in h.after or HELP_A.text in h.before or HELP_B.text in h.before}
    harmful = next((h.index for h in hunks if HARM.text in h.after), None)  # none in the no-recovery variant
    return {
        "name": name,
        "seed": seed,
        "budget": max_calls,
        **_outcome(task, result),
        "train_calls": result.calls_by_purpose.get("train", 0),
        "purposes": dict(result.calls_by_purpose),
        "rounds": result.rounds,
        "stop": result.stopped_because + (f" ({result.stop_detail})" if result.stop_detail else ""),
        "ddmin_steps": diff.steps if "diff" in names and diff.diff is not None and diff.steps else None,
        "ddmin_exact": set(diff.result) == culprits,
        "ddmin_harmful": harmful in diff.result,
        "hunks": len(hunks),
        "unparsed": result.unparsed,
        "rejected": len(result.rejected),
        "seconds": time.perf_counter() - started,
    }


GEPA_CALLS = 3000
GEPA = {
    "GEPA, scripted reflection, reflection calls unlimited": ("regression", None),
    f"GEPA, scripted reflection, {PROPOSER_CALLS} reflection calls": ("regression", PROPOSER_CALLS),
    "GEPA, no recovery possible, reflection calls unlimited": ("no-recovery", None),
}


def run_gepa(args: tuple[str, int, int]) -> dict[str, Any]:
    """GEPA (``optimize_with_gepa``) on the same task, scored by llmops on the same test split."""
    from llmops.optimize import optimize_with_gepa

    name, seed, max_calls = args
    variant, reflections = GEPA[name]
    task = SimulatedTask(seed, variant=variant)
    problem = _problem(task, seed)
    result = optimize_with_gepa(
        problem, task.rewriter(), budget=Budget(max_calls=max_calls, max_proposer_calls=reflections)
    )
    best = next((s for s in result.trajectory if s.status == "gepa best"), None)
    return {
        "name": name,
        "seed": seed,
        **_outcome(task, result),
        "in_sample": best.validation if best is not None and best.validation is not None else math.nan,
        "test_rate": result.test_scores[0].rate if result.test_scores else math.nan,
        "reflections": result.proposer_calls,
    }


def gepa_rows(seeds: range, jobs: int) -> tuple[list[dict[str, Any]], str]:
    """GEPA's rows, or none and why (the error text) when it cannot run here."""
    try:
        import gepa  # noqa: F401
    except ImportError as e:
        return [], f"GEPA did not run: {type(e).__name__}: {e} (pip install 'llmops[gepa]')"
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run_gepa, [(name, s, GEPA_CALLS) for name in GEPA for s in seeds], chunksize=2)), ""


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else math.nan


def share(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k}/{n} ({100 * lo:.0f}-{100 * hi:.0f}%)"


def _gepa_version() -> str:
    try:
        from importlib.metadata import version

        return version("gepa")
    except Exception:
        return "(not installed)"


def _gepa_line(name: str, rs: list[dict[str, Any]], *, with_sample: bool) -> str:
    rec = [r["recovery"] for r in rs]
    tru = [r["true_recovery"] for r in rs]
    sample = (
        f"{pct(median([r['in_sample'] for r in rs]))} / {pct(median([r['test_rate'] for r in rs]))}"
        if with_sample
        else "-"
    )
    reflections = f"{median([r['reflections'] for r in rs]):.0f}" if with_sample else "-"
    return (
        f"| {name} | {pct(median(rec))} | {pct(min(rec))} | {pct(median(tru))} / {pct(min(tru))} | {sample} "
        f"| {median([r['calls'] for r in rs]):.0f} | {reflections} | {share(sum(r['accepted'] for r in rs), len(rs))} "
        f"| {share(sum(r['truly_worse'] for r in rs), len(rs))} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="seeds per configuration (default 20)")
    ap.add_argument("--null-seeds", type=int, default=100, help="seeds of the no-recovery variant (default 100)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "optimizer.md")
    args = ap.parse_args()
    started = time.perf_counter()
    seeds = range(args.seeds)
    null = "no recovery possible, racing, all three"
    jobs = [(name, s, MAX_CALLS) for name in CONFIGS for s in (range(args.null_seeds) if name == null else seeds)]
    sweep = [(name, s, b) for b in SWEEP for name in list(CONFIGS)[:2] for s in seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, jobs + sweep, chunksize=2))
    gepa, gepa_error = gepa_rows(seeds, args.jobs)
    main_rows = rows[: len(jobs)]
    sweep_rows = rows[len(jobs) :]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in main_rows:
        by.setdefault(r["name"], []).append(r)

    n = args.seeds
    d = Search()
    sizes, u = [], min(d.first_units, 20 * d.train_passes)
    while True:
        sizes.append(u)
        if u >= 20 * d.train_passes:
            break
        u = min(2 * u, 20 * d.train_passes)
    rungs = " / ".join(map(str, sizes))
    out = [
        "# Optimizer benchmark: a simulated regression with a known optimum",
        "",
        f"{n} seeds per row; 40 cases (20 train / 10 validation / 10 test); {TEST_UNITS} test samples per prompt; "
        f"budget {MAX_CALLS} model calls and {PROPOSER_CALLS} proposer calls; `Search()` defaults "
        f"(k = {d.k} per proposer; successive halving keeping 1/{d.eta} on {rungs} training samples; acceptance "
        f"alpha = {d.alpha:g} over the whole search, min_improvement = {d.min_improvement:g}; checks against the "
        f"baseline at error rates {d.check_error:g}). See the docstring of benchmarks/optimizer.py for the task.",
        "",
        "Recovery = (candidate - regressed) / (baseline - regressed) on the held-out test cases; 0 when no "
        "candidate was accepted. 'estimate' is the optimizer's own number from its test samples, 'truth' the "
        "same ratio from the known true rates.",
        "",
        "| configuration | median recovery, estimate | worst, estimate | median / worst, truth | recovered (stop) "
        "| median calls | median training-race calls | median rounds | stop reasons |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in by.items():
        if name.startswith("no recovery"):
            continue
        rec = [r["recovery"] for r in rs]
        tru = [r["true_recovery"] for r in rs]
        stops = Counter(r["stop"] for r in rs)
        out.append(
            f"| {name} | {pct(median(rec))} | {pct(min(rec))} | {pct(median(tru))} / {pct(min(tru))} "
            f"| {sum(r['stop'] == 'recovered' for r in rs)}/{n} | {median([r['calls'] for r in rs]):.0f} "
            f"| {median([r['train_calls'] for r in rs]):.0f} | {median([r['rounds'] for r in rs]):.0f} "
            f"| {', '.join(f'{k}: {v}' for k, v in stops.most_common())} |"
        )

    out += [
        "",
        "## Recovery against the model-call budget (all three proposers)",
        "",
        "Median recovery on test (estimate; 0 without a candidate) and median calls used, per budget.",
        "",
        "| max calls | " + " | ".join(list(CONFIGS)[:2]) + " |",
        "|---|---|---|",
    ]
    reach: dict[str, int | None] = {}
    for b in SWEEP:
        cells = []
        for name in list(CONFIGS)[:2]:
            rs = [r for r in sweep_rows if r["name"] == name and r["budget"] == b]
            m = median([r["recovery"] for r in rs])
            if m >= 0.8 and reach.get(name) is None:
                reach[name] = b
            cells.append(f"{pct(m)} ({median([r['calls'] for r in rs]):.0f} calls)")
        out.append(f"| {b} | " + " | ".join(cells) + " |")

    purposes = ("train", "train check", "validation", "validation check", "test")
    out += [
        "",
        "Where the calls go (median per run; 'check' = the paired not-worse-than-baseline tests on fresh samples: "
        "DiffSearch's 'does this revert recover?' on training cases, the 'recovered' stop on validation cases):",
        "",
        "| configuration | " + " | ".join(purposes) + " | total |",
        "|---|" + "---|" * (len(purposes) + 1),
    ]
    for name in list(CONFIGS)[:2]:
        rs = by[name]
        cells = [f"{median([r['purposes'].get(k, 0) for r in rs]):.0f}" for k in purposes]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {median([r['calls'] for r in rs]):.0f} |")

    diff_rows = [r for rs in by.values() for r in rs if r["ddmin_steps"] is not None and r["name"] != null]
    bound = 2 * math.log2(diff_rows[0]["hunks"]) + 2 if diff_rows else math.nan
    steps = sorted(r["ddmin_steps"] for r in diff_rows)
    out += [
        "",
        "## Diff search (ddmin over sentence hunks)",
        "",
        f"{len(diff_rows)} runs with DiffSearch on the regression ({diff_rows[0]['hunks'] if diff_rows else '-'} hunks, "
        f"3 of which matter). An evaluation round is one ddmin step: its chunks and complements race together.",
        "",
        "| evaluation rounds: median | max | bound 2 log2(hunks) + 2 | within the bound | found exactly the 3 "
        "| harmful hunk in the revert |",
        "|---|---|---|---|---|---|",
        f"| {median(steps):.0f} | {max(steps) if steps else '-'} | {bound:.0f} "
        f"| {share(sum(s <= bound for s in steps), len(steps))} "
        f"| {share(sum(r['ddmin_exact'] for r in diff_rows), len(diff_rows))} "
        f"| {share(sum(r['ddmin_harmful'] for r in diff_rows), len(diff_rows))} |",
    ]

    nr = by[null]
    worse_all = [r for rs in by.values() for r in rs if r["truly_worse"]]
    out += [
        "",
        "## False acceptance",
        "",
        "No recovery possible: the regressed prompt differs from the baseline only by harmless rewording, and "
        "nothing a proposer can do makes it truly better. Shares with 95% Clopper-Pearson intervals.",
        "",
        "| | any candidate accepted | accepted one truly worse than the regressed prompt on the test cases "
        "| median calls | stop reasons |",
        "|---|---|---|---|---|",
        f"| no recovery possible ({len(nr)} seeds) | {share(sum(r['accepted'] for r in nr), len(nr))} "
        f"| {share(sum(r['truly_worse'] for r in nr), len(nr))} | {median([r['calls'] for r in nr]):.0f} "
        f"| {', '.join(f'{k}: {v}' for k, v in Counter(r['stop'] for r in nr).most_common())} |",
        "",
        f"Across all {len(main_rows)} runs (every configuration): "
        f"{len(worse_all)} accepted a candidate truly worse than the regressed prompt.",
    ]

    ours = [r for r in sweep_rows if r["name"] == "racing, all three" and r["budget"] == GEPA_CALLS]
    out += [
        "",
        "## GEPA on the same task",
        "",
        f"GEPA {_gepa_version()} (`llmops.optimize.optimize_with_gepa`: `gepa.optimize` with an adapter over llmops's "
        f"sampler and checks) on the same simulated task and split, {args.seeds} seeds, the same budget of "
        f"{GEPA_CALLS} model calls (test scoring included), and the scripted proposer as its reflection model "
        "(the same edit distribution, one new text per reflection call; GEPA's own reflection prompt). GEPA "
        "selects its winner by its score on the validation cases it searched with (in-sample); llmops scores "
        f"that winner on the {TEST_UNITS} held-out test samples per prompt, as it scores its own. (MLflow's "
        "`mlflow.genai.optimize_prompts` with `GepaPromptOptimizer` is not used: it takes the reflection model "
        "only as a `<provider>:/<model>` name that it calls through the provider, not as a Python callable, "
        "so it cannot run offline with the scripted proposer.)",
        "",
    ]
    if gepa_error:
        out.append(gepa_error)
    else:
        out += [
            "| configuration | median recovery on test, estimate | worst | median / worst, truth "
            "| winner's score, GEPA's (in-sample) / llmops test, median | median calls | median reflection calls "
            "| candidate proposed | truly worse than the regressed prompt |",
            "|---|---|---|---|---|---|---|---|---|",
            _gepa_line(f"llmops, racing, all three, {GEPA_CALLS} calls", ours, with_sample=False),
        ]
        for name in GEPA:
            out.append(_gepa_line(name, [r for r in gepa if r["name"] == name], with_sample=True))
        null_gepa = [r for r in gepa if GEPA[r["name"]][0] == "no-recovery"]
        out += [
            "",
            "In the no-recovery variant no candidate is truly better than the regressed prompt, yet GEPA proposed "
            f"one in {sum(r['accepted'] for r in null_gepa)}/{len(null_gepa)} seeds (llmops: "
            f"{sum(r['accepted'] for r in by[null])}/{len(by[null])}, above): its winner is the best of many "
            "by its score on the 10 validation cases it searched with, and nothing tests whether it is better. "
            "The scripted edits are neutral far more often than harmful, so these winners are mostly truly equal "
            "to the regressed prompt rather than worse.",
        ]

    racing, full = by["racing, all three"], by["full evaluation, all three"]
    med_racing = median([r["recovery"] for r in racing])
    calls_ratio = median([r["calls"] for r in racing]) / median([r["calls"] for r in full])
    train_ratio = median([r["train_calls"] for r in racing]) / median([r["train_calls"] for r in full])
    full_total = median([r["calls"] for r in full])
    shared = median([r["calls"] - r["train_calls"] for r in racing])
    r_reach, f_reach = reach.get("racing, all three"), reach.get("full evaluation, all three")
    worse_k = sum(r["truly_worse"] for r in nr)
    worse_rate = worse_k / len(nr)
    worse_hi = clopper_pearson(worse_k, len(nr))[1]
    within = sum(s <= bound for s in steps) == len(steps) and bool(steps)
    targets = [
        (f"median recovery on test >= 80% (racing, all three): {pct(med_racing)}", med_racing >= 0.8),
        (
            "racing reaches it with <= 50% of the calls of full evaluation: total calls "
            f"{100 * calls_ratio:.0f}% (median, same stop rule); training-race calls {100 * train_ratio:.0f}%; "
            f"smallest budget in the sweep with median recovery >= 80%: racing {r_reach}, full {f_reach}. "
            f"The calls outside the training race are the same work in both ({shared:.0f} with racing: the "
            "fresh-sample checks, the acceptance test, the test scoring), so 50% in all would need a training "
            f"race of at most {max(0.0, 0.5 * full_total - shared):.0f} calls, of which "
            f"{2 * 20 * Search().train_passes} score the two starting prompts",
            calls_ratio <= 0.5,
        ),
        (
            f"a worse candidate accepted in <= 5% of seeds (no recovery possible): {worse_k}/{len(nr)} = "
            f"{100 * worse_rate:.0f}%, 95% upper bound {100 * worse_hi:.1f}%",
            worse_hi <= 0.05,
        ),
        (
            f"diff search within 2 log2(hunks) + 2 = {bound:.0f} evaluation rounds: max {max(steps) if steps else '-'}",
            within,
        ),
    ]
    out += ["", "## Targets", ""]
    out += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in targets]
    other = Counter(r["stop"] for r in main_rows)
    out += [
        "",
        f"Proposer replies or blocks that did not parse: {sum(r['unparsed'] for r in main_rows)}; candidates "
        f"rejected before any call (variables or template): {sum(r['rejected'] for r in main_rows)}; "
        f"stop reasons over all runs: {dict(other)}.",
        "",
        f"({time.perf_counter() - started:.0f} s, {args.jobs} processes)",
    ]
    text = "\n".join(out)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
