"""The JSON report: the session record, versioned, with a JSON Schema that documents it.

``--llmops-report-json PATH`` writes the record that MLflow gets (``llmops/results.json``)
with ``schema_version`` set.  The file is strict JSON (a rate that does not exist, with no
sample, is ``null``, never ``NaN``) and is also what ``--llmops-baseline PATH`` reads.

``SCHEMA`` is the one description of the fields: ``docs/report-schema.md`` is generated
from it (``python -m llmops.report.json > docs/report-schema.md``), and the tests validate
a real report against it.  A change that breaks readers bumps ``SCHEMA_VERSION``; new
optional fields do not.  Readers take every version up to this one (``check_version``):
the older layouts are this one with fewer fields.

Versions:

- 1: the first documented layout.
- 2: ``results[].judge``: the judge's calls, replays, tokens, cost and agreement.  A reader
  of version 1 that sums ``cost_usd`` for the session's spend would now miss the judges'
  calls, which are kept apart from the model under test's, hence the new version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from llmops.errors import ConfigError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "check_version", "dumps", "schema_markdown", "stamp", "validate"]

#: Version of the record's layout (see the module docstring for what each one added).
SCHEMA_VERSION = 2

_NUM = {"type": ["number", "null"]}  # null where the number does not exist (no sample: no rate)
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_PAIR = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}


def _d(base: Mapping[str, Any], description: str, **more: Any) -> dict[str, Any]:
    return {**base, "description": description, **more}


_CASE = {
    "type": "object",
    "description": "Counts of one case, on the requirement's scale.",
    "required": ["case_id", "k", "n", "errors"],
    "properties": {
        "case_id": _d(_STR, "The case's id."),
        "k": _d(_INT, "Samples of this case the check passed (at_least) or found a violation in (at_most)."),
        "n": _d(_INT, "Samples of this case with an answer."),
        "errors": _d(_INT, "Samples of this case that ended in a model or check error."),
        "example": _d(_STR, "The reason of one failing sample of this case."),
        "key": _d(_STR, "Content key of the case (inputs and expected answer): what a baseline pairs on."),
    },
}

_SAMPLE = {
    "type": "object",
    "description": "One sample the verdict (or the comparison) looked at: the drill-down row.",
    "required": ["case_id", "sample", "outcome"],
    "properties": {
        "case_id": _d(_STR, "The case's id."),
        "sample": _d(_INT, "Index of the sample within its case."),
        "prompt_version": _d(_STR, "Version of the prompt sampled: the test's, or the baseline's (rerun mode)."),
        "inputs": _d({"type": "object"}, "The case's inputs."),
        "output": _d({"type": ["string", "null"]}, "The model's output, redacted; null after a model error."),
        "check": _d(_STR, "The check's name."),
        "outcome": _d(
            {"enum": ["pass", "fail", "clean", "violation", "model error", "check error"]},
            "On the requirement's scale: pass/fail (at_least), clean/violation (at_most), or the error's kind.",
        ),
        "reason": _d(_STR, "The check's reason, in full (or the error)."),
        "latency_s": _d(_NUM, "Seconds the call took."),
    },
}

_COMPARISON = {
    "type": ["object", "null"],
    "description": "The paired comparison with the baseline, on the requirement's scale; null without one.",
    "required": ["baseline", "mode", "base_version", "verdict", "difference", "interval", "pairs"],
    "properties": {
        "baseline": _d(_STR, "Where the baseline came from: '@baseline (run ...)', 'file base.json'."),
        "mode": _d({"enum": ["rerun", "stored", "unchanged"]}, "How it was compared."),
        "base_version": _d(_STR, "The baseline prompt's version."),
        "verdict": _d(
            {"enum": ["not worse", "regressed", "unchanged", "ERROR"]},
            "'regressed' fails the test; ERROR: could not decide (the test is an error).",
        ),
        "difference": _d(_NUM, "New rate minus the baseline's over the pairs (violations for at_most)."),
        "interval": _d(_PAIR, "95% interval of the difference."),
        "pairs": _d(_INT, "Pairs compared."),
        "wins": _d(_INT, "Pairs where the new prompt did better."),
        "losses": _d(_INT, "Pairs where it did worse."),
        "ties": _d(_INT, "Pairs with the same outcome."),
        "tolerance": _d(_NUM, "The drop that counts as a regression."),
        "false_alarm": _d(_NUM, "Chance of calling a prompt that is not worse 'regressed'."),
        "miss": _d(_NUM, "Chance of calling a drop of the tolerance 'not worse'."),
        "message": _d(_STR, "The comparison in one sentence."),
        "stopped": _d(_STR, "Why it stopped undecided before its cap (the session's budget), if it did."),
    },
}

_JUDGE = {
    "type": ["object", "null"],
    "description": (
        "The judge's calls behind the requirement (a check that asks a judge model), counted, replayed and "
        "priced apart from the model under test's; null when no judge was asked. (Since version 2.)"
    ),
    "required": ["models", "calls", "replayed", "cost_usd", "outputs"],
    "properties": {
        "models": _d({"type": "array", "items": _STR}, "The judge models' ids."),
        "calls": _d(_INT, "Judge calls made (replays from the response cache not counted)."),
        "replayed": _d(_INT, "Judge answers replayed from the response cache: no call, no cost."),
        "failed_calls": _d(_INT, "Judge calls that ended in an error after retries."),
        "unparsed": _d(_INT, "Judge replies that did not parse in the strict format (check errors, never passes)."),
        "input_tokens": _d(_INT, "Input tokens of the judge calls made."),
        "output_tokens": _d(_INT, "Output tokens of those calls."),
        "cost_usd": _d(_NUM, "USD for the judge calls at the judge model's own price; null when no price is known."),
        "outputs": _d(_INT, "Outputs judged (each asked `repeats` times)."),
        "repeats": _d(_INT, "Judgements per output."),
        "agreement": _d(_NUM, "Mean majority share of the repeats over the outputs judged more than once; else null."),
        "agreed": _d(_INT, "Outputs judged more than once (the agreement's denominator)."),
        "low_agreement": _d(_INT, "Of those, outputs whose repeats agreed less than min_agreement."),
        "min_agreement": _d(_NUM, "The judge's min_agreement."),
        "warning": _d(
            _STR,
            "'LOW JUDGE AGREEMENT: ...' when more than 1 - min_agreement of the outputs judged more than once "
            "were low (the verdict stands; the judge is suspect), else ''.",
        ),
    },
}

_RESULT = {
    "type": "object",
    "description": "The verdict on one requirement (one expect()), with every number behind it.",
    "required": [
        "prompt",
        "prompt_version",
        "model",
        "check",
        "description",
        "direction",
        "threshold",
        "k",
        "n",
        "rate",
        "interval",
        "verdict",
        "calls",
        "test_id",
        "key",
    ],
    "properties": {
        "prompt": _d(_STR, "The prompt's name."),
        "prompt_version": _d(_STR, "The prompt's content hash."),
        "model": _d(_STR, "The model's id."),
        "check": _d(_STR, "The check's name."),
        "check_params": _d({"type": "object"}, "The arguments the check was built with."),
        "description": _d(_STR, "The check in words: 'valid JSON'."),
        "direction": _d(
            {"enum": ["at_least", "at_most"]},
            "at_least: a pass rate to reach; at_most: a violation rate not to exceed.",
        ),
        "threshold": _d(_RATE, "The required rate."),
        "tolerance": _d(_NUM, "How far past the threshold a rate may be before a PASS is a miss."),
        "false_alarm": _d(_NUM, "Chance of failing a prompt that meets the requirement."),
        "miss": _d(_NUM, "Chance of passing a prompt worse than threshold - tolerance."),
        "k": _d(_INT, "Samples where the check passed (at_least) or found a violation (at_most)."),
        "n": _d(_INT, "Samples with an answer (errors left out)."),
        "errors": _d(_INT, "Model errors plus check errors among the samples looked at."),
        "calls": _d(_INT, "Model calls this requirement made (baseline calls included; replays and judge calls not)."),
        "rate": _d(_NUM, "k / n; null when n is 0."),
        "interval": _d(_PAIR, "95% two-sided interval of the rate (Wilson)."),
        "bound": _d(_NUM, "Exact one-sided bound on the requirement's side (Clopper-Pearson)."),
        "verdict": _d(
            {"enum": ["PASS", "FAIL", "ERROR", "PLAN"]}, "PASS, FAIL, ERROR (no verdict), PLAN (--llmops-plan)."
        ),
        "fixed_n": _d(_INT, "Samples a fixed-size design with the same error rates would use."),
        "n_cases": _d(_INT, "Cases in the run."),
        "population": _d(
            {"enum": ["cases", "inputs"]}, "What the verdict speaks about: these cases, or inputs like them."
        ),
        "cases": _d({"type": "array", "items": _CASE}, "Per-case counts, in the run's case order."),
        "model_errors": _d(_INT, "Samples that ended in a model error."),
        "check_errors": _d(_INT, "Samples whose check raised."),
        "reused": _d(_INT, "Samples looked at that an earlier requirement of the run had drawn."),
        "unused": _d(_INT, "Calls made here that no decision looked at (drawn in a batch)."),
        "retries": _d(_INT, "Extra attempts behind the calls."),
        "baseline_calls": _d(_INT, "Of calls, those of the baseline prompt (rerun mode)."),
        "replayed": _d(_INT, "Samples replayed from the response cache: no call, no cost."),
        "latency_p50": _d(_NUM, "Median seconds per call among the verdict's samples."),
        "latency_p95": _d(_NUM, "95th percentile seconds per call."),
        "input_tokens": _d(_INT, "Input tokens of the calls counted in calls."),
        "output_tokens": _d(_INT, "Output tokens of those calls."),
        "error_budget": _d(_NUM, "Largest share of samples that may end in errors before the result is an ERROR."),
        "first_error": _d(_STR, "The first error, in full."),
        "test_id": _d(_STR, "The pytest node id ('' outside pytest)."),
        "message": _d(_STR, "The verdict in one sentence."),
        "cost_usd": _d(_NUM, "USD for the model calls (judge calls: judge.cost_usd); null when no price is known."),
        "comparison": _COMPARISON,
        "key": _d(_STR, "Test, prompt, check with arguments, direction, threshold: what baselines match on."),
        "model_settings": _d({"type": ["object", "null"]}, "The model's identity and settings (no secrets)."),
        "stopped": _d(_STR, "Why sampling stopped before a verdict (the session's budget), if it did."),
        "plan": _d(
            {"type": ["object", "null"]}, "--llmops-plan: expected, p95 and maximum calls (and cost); no model called."
        ),
        "template": _d(
            {"type": "array", "items": {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2}},
            "The prompt's (role, template) parts.",
        ),
        "trace": _d(
            {"type": "string", "pattern": "^[01e]*$"}, "Pass-scale outcome per stream position (stored baselines)."
        ),
        "trace_cases": _d({"type": "array", "items": _INT}, "Case position per stream position."),
        "samples": _d({"type": "array", "items": _SAMPLE}, "One row per sample looked at (the drill-down)."),
        "judge": _JUDGE,
    },
}

_SIDE = {
    "type": "object",
    "description": "One prompt's numbers on the held-out cases.",
    "properties": {"k": _INT, "n": _INT, "rate": _NUM, "interval": _PAIR},
}

_CANDIDATE = {
    "type": "object",
    "description": "A prompt the optimizer proposes, registered under an alias; never applied to the user's files.",
    "required": ["prompt"],
    "properties": {
        "prompt": _d(_STR, "The prompt's name."),
        "test_id": _d(_STR, "The test whose failure or regression started the search."),
        "alias": _d(_STR, "Registry alias (default 'candidate')."),
        "registry": _d(_STR, "Where to load it: 'prompts:/name@candidate'."),
        "file": _d(_STR, "Where its text was written: '.llmops/candidates/<prompt>.txt'."),
        "incumbent_version": _d(_STR, "Version it was compared with."),
        "version": _d(_STR, "The candidate's version."),
        "proposer": _d(_STR, "What proposed it: 'revert', 'reflect', 'few-shot'."),
        "message": _d(_STR, "The candidate in one sentence."),
        "diff": _d(_STR, "Unified diff from the incumbent's text to the candidate's."),
        "before": _d(_STR, "The incumbent's text (used when diff is absent)."),
        "after": _d(_STR, "The candidate's text (used when diff is absent)."),
        "held_out": _d(
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["requirement"],
                    "properties": {
                        "requirement": _d(_STR, "The requirement: 'valid JSON >= 90%'."),
                        "candidate": _SIDE,
                        "incumbent": _SIDE,
                        "difference": _d(_NUM, "Candidate minus incumbent, paired by case."),
                        "difference_interval": _d(_PAIR, "95% interval of the difference."),
                        "verdict": _d(_STR, "'better', 'not worse' or 'worse'."),
                    },
                },
            },
            "Numbers on the held-out test cases, scored once after the candidate was chosen.",
        ),
    },
}

_MISSING = {
    "type": ["object", "string"],
    "description": "A requirement of the baseline that no test evaluated.",
    "properties": {
        "key": _d(_STR, "The requirement's key (test, prompt, check, direction, threshold)."),
        "requirement": _d(_STR, "The requirement in words."),
        "baseline": _d(_STR, "The baseline that has it."),
    },
}

_TEST_ERROR = {
    "type": "object",
    "description": "A test that ended in an llmops ERROR before any verdict (a bad schema, too few cases).",
    "required": ["test_id", "error", "message"],
    "properties": {
        "test_id": _d(_STR, "The pytest node id."),
        "error": _d(_STR, "The error's class: NotDecided, CheckError, ..."),
        "message": _d(_STR, "The error's message, redacted: what is wrong and the fix."),
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://llmops.dev/schema/report-v{SCHEMA_VERSION}.json",
    "title": "llmops session record",
    "description": "Everything one pytest session produced: --llmops-report-json, MLflow's llmops/results.json.",
    "type": "object",
    "required": ["schema_version", "session_id", "started", "finished", "settings", "git", "results"],
    "properties": {
        "schema_version": _d({"const": SCHEMA_VERSION}, "Version of this layout."),
        "session_id": _d(_STR, "Unique per session; MLflow runs are keyed by it."),
        "started": _d(_INT, "Start, milliseconds since the epoch."),
        "finished": _d({"type": ["integer", "null"]}, "End, milliseconds since the epoch."),
        "llmops_version": _d(_STR, "The llmops that wrote it."),
        "settings": _d({"type": "object"}, "The session's settings (options and ini keys)."),
        "git": _d(
            {"type": "object", "properties": {"commit": _STR, "branch": _STR, "pull_request": _STR}},
            "Commit, branch and pull request, where known.",
        ),
        "results": _d({"type": "array", "items": _RESULT}, "One per requirement, in the order decided."),
        "outcome": _d(
            {
                "type": "object",
                "properties": {
                    "counts": _d({"type": "object"}, "Requirements per verdict: PASS, FAIL, ERROR."),
                    "regressed": _d(_INT, "Requirements that regressed against the baseline."),
                    "exit_status": _d({"type": ["integer", "null"]}, "pytest's exit status."),
                    "partial": _d({"type": ["string", "null"]}, "Why not every test ran (-x, interrupted), or null."),
                },
            },
            "How the session ended: what `llmops promote` checks before marking a baseline.",
        ),
        "missing": _d(
            {"type": "array", "items": _MISSING},
            "Requirements the baseline has that this session did not evaluate (they fail the gate unless "
            "allow_missing).",
        ),
        "test_errors": _d(
            {"type": "array", "items": _TEST_ERROR},
            "Tests that ended in an llmops ERROR before any verdict (no result holds them).",
        ),
        "candidates": _d({"type": "array", "items": _CANDIDATE}, "Prompts the optimizer proposed."),
        "ahead": _d(
            {
                "type": "object",
                "properties": {
                    "tests": _d(_INT, "Tests whose requirements were sampled ahead, side by side."),
                    "unused_calls": _d(_INT, "Calls made ahead that their test did not take (in no result)."),
                    "unused_requests": _d(_INT, "Their requests to the model, retries included."),
                    "in_flight": _d(_INT, "Calls made ahead still unanswered when the session ended."),
                },
            },
            "--llmops-prefetch: the look-ahead's own accounting.",
        ),
        "shards": _d(
            {"type": "array", "items": {"type": "object"}},
            "The records merged into this one (`llmops report --merge`): file, session_id, commit, results.",
        ),
    },
}


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def check_version(record: Mapping[str, Any], where: str) -> None:
    """A ConfigError for a record written by a newer llmops (a layout this one cannot read)."""
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(
            f"{where} has schema version {version!r}, newer than this llmops reads ({SCHEMA_VERSION}); "
            "upgrade llmops (pip install -U llmops)"
        )


def stamp(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the record with this layout's ``schema_version``."""
    return {"schema_version": SCHEMA_VERSION, **record}


def dumps(record: Mapping[str, Any]) -> str:
    """The record as strict JSON (NaN and infinities as null), stamped with the schema version."""
    return json.dumps(_strict(stamp(record)), indent=1, allow_nan=False)


def validate(record: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if the record does not follow ``SCHEMA``."""
    from jsonschema import Draft202012Validator

    Draft202012Validator(SCHEMA).validate(_strict(dict(record)))


def schema_markdown() -> str:
    """``docs/report-schema.md``: every field of ``SCHEMA`` in tables."""
    out = [
        f"# The JSON report, schema version {SCHEMA_VERSION}",
        "",
        "Generated from `llmops/report/json.py` (`python -m llmops.report.json > docs/report-schema.md`):",
        "`llmops.report.json.SCHEMA` is the same as a JSON Schema (draft 2020-12). `--llmops-report-json PATH`",
        "writes this record; MLflow keeps it as `llmops/results.json`; `--llmops-baseline PATH` reads it.",
        "Numbers that do not exist (a rate with no sample) are `null`. New optional fields may appear within a",
        "version; a change that breaks readers bumps `schema_version`. Readers take every older version.",
        "",
        "Versions: 1, the first documented layout; 2, `results[].judge` (the judge's calls, replays, tokens,",
        "cost and agreement, kept apart from the model under test's `calls` and `cost_usd`).",
    ]

    def table(title: str, node: Mapping[str, Any]) -> None:
        required = set(node.get("required", ()))
        out.extend(
            [
                "",
                f"## {title}",
                "",
                str(node.get("description", "")),
                "",
                "| field | type | description |",
                "|---|---|---|",
            ]
        )
        for name, prop in node["properties"].items():
            kind = _type_name(prop)
            mark = "" if name in required else " (optional)"
            out.append(f"| `{name}`{mark} | {kind} | {prop.get('description', '')} |")

    table("The record", SCHEMA)
    table("A result (`results[]`)", _RESULT)
    table("A comparison (`results[].comparison`)", _COMPARISON)
    table("The judge's calls (`results[].judge`)", _JUDGE)
    table("A case (`results[].cases[]`)", _CASE)
    table("A sample (`results[].samples[]`)", _SAMPLE)
    table("A candidate (`candidates[]`)", _CANDIDATE)
    table("A missing requirement (`missing[]`)", _MISSING)
    table("A test error (`test_errors[]`)", _TEST_ERROR)
    return "\n".join(out) + "\n"


def _type_name(prop: Mapping[str, Any]) -> str:
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "type" not in prop and "properties" in prop:
        return "object"
    kind = prop.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds and isinstance(prop.get("items"), Mapping):
        inner = _type_name(prop["items"])
        return f"array of {inner}"
    return " or ".join(kinds)


if __name__ == "__main__":
    print(schema_markdown(), end="")
