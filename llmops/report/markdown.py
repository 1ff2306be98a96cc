"""The Markdown report: the pull request's comment and the CI job's summary.

The verdict first, in one line; then one sentence per problem (the regression's own
message); a table per test; an optimizer candidate's diff when the record has one; the
failing samples folded in ``<details>``.  It stays under GitHub's comment limit (65,536
characters): long outputs are cut with a note, and sections that do not fit are left out,
saying how many.

Model output is untrusted: in a comment it could ping people (``@team``), load images or
close the ``<details>`` it sits in.  Outputs go in code fences longer than any backtick run
they hold; every other text is escaped for Markdown and HTML, with mentions broken.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmops.evaluation import Result
from llmops.report._format import (
    ERROR,
    FAIL,
    PASS,
    REGRESSED,
    WARNING,
    Source,
    bad_samples,
    baseline,
    candidate_where,
    cost,
    difference,
    gate_counts,
    gate_status,
    interval,
    judge_cell,
    judge_facts,
    k_of_n,
    latency,
    pct,
    problem_list,
    rate,
    record_of,
    requirement,
    results_of,
    seconds,
    short_test,
    status,
    tested,
    totals,
    wall_time,
)
from llmops.report.terminal import family

__all__ = ["GITHUB_LIMIT", "render"]

#: GitHub rejects issue and pull-request comments longer than this (characters).
GITHUB_LIMIT = 65_536
#: What ``render`` aims for by default: room left for a wrapper (a sticky comment's marker).
DEFAULT_MAX_CHARS = 60_000
ICON = {PASS: "✅", FAIL: "❌", REGRESSED: "📉", ERROR: "⚠️", "PLAN": "📝", WARNING: "🟡"}
SAMPLES_PER_REQUIREMENT = 5
OUTPUT_CHARS = 600
CASES_PER_REQUIREMENT = 30

# What can start markup inside a line: emphasis, code, links and images, tables, strikethrough.
# (Line-start markup, "#" or "- ", cannot occur: untrusted text never starts a line here.)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def text(value: Any) -> str:
    """Untrusted text for a table cell or a sentence: no markup, no mention, one line."""
    s = html.escape(str(value), quote=False)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace("@", "@\u200b")  # a zero-width space: "@team" is shown, nobody is pinged
    s = " ".join(s.split()) if "\n" in s or "\r" in s else s
    # At the start of a line (a candidate's message), "# ", "- ", "> ", "1. " would be markup.
    return re.sub(r"^([#>+=-])", r"\\\1", re.sub(r"^(\d+)([.)])", r"\1\\\2", s))


def code(value: Any) -> str:
    """Inline code for names we generated (test ids, versions), safe whatever they hold."""
    s = " ".join(str(value).split())
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def fence(body: str, lang: str = "text") -> str:
    """A fenced block that its content cannot close."""
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", body)), default=0) + 1)
    return f"{ticks}{lang}\n{body}\n{ticks}"


def _clip(body: str, limit: int, where: str) -> str:
    if len(body) <= limit:
        return body
    return body[:limit] + f"\n[... {len(body) - limit} more characters; the full text is in {where}]"


def headline(results: Sequence[Result], record: Mapping[str, Any] | None = None) -> str:
    """The first line: the session's verdict and its counts."""
    record = record or {}
    word = gate_status(results, record)
    return f"### {ICON.get(word, '')} llmops: {word} · {gate_counts(results, record)}".replace("  ", " ")


def _facts(results: Sequence[Result], record: Mapping[str, Any]) -> str:
    t = totals(results)
    parts = [
        f"{t['calls']} model calls"
        + (f" ({t['baseline_calls']} of the baseline prompt)" if t["baseline_calls"] else ""),
        f"{t['replayed']} replayed from the cache",
        f"cost {cost(results)}",
    ]
    judges = judge_facts(results)
    if judges:
        parts.append(text(judges))  # apart from the model calls: the judge is not the model under test
    wall = wall_time(record)
    if wall is not None:
        parts.append(f"wall time {seconds(wall)}")
    p50, p95 = latency(results)
    if p50 is not None:
        parts.append(f"latency p50 {seconds(p50)} / p95 {seconds(p95)} (slowest requirement)")
    git = record.get("git") or {}
    if git.get("commit"):
        where = code(str(git["commit"])[:7]) + (f" on {code(git['branch'])}" if git.get("branch") else "")
        parts.append(f"commit {where}")
    base = next((r.comparison.baseline for r in results if r.comparison is not None), None)
    if base:
        parts.append(f"baseline {code(base)}")
    return " · ".join(parts)


def problems(results: Sequence[Result], record: Mapping[str, Any] | None = None) -> list[str]:
    """One list item per problem: the FAIL's message, the regression's, the ERROR's cause, what is missing."""
    items = []
    for kind, name, sentence, i in problem_list(results, record or {}):
        if kind == FAIL and i is not None:  # the numbers in one line; the worst cases are in the details
            r = results[i]
            sentence = (
                f"{requirement(r)}: {rate(r)} ({k_of_n(r)}), 95% interval {interval(r)}, tested {tested(r)}; "
                f"FAIL with false-alarm rate <= {pct(r.false_alarm)}"
            )
        sentence = sentence.removeprefix(f"{kind} ")  # "REGRESSED triage ...": the badge says it already
        icon = ICON.get(kind.split()[0], ICON[FAIL] if kind == "MISSING" else "")
        where = f" {code(name)}:" if name else ""
        items.append(f"- {icon} **{kind}**{where} {text(sentence)}")
    return items


_HEADER = "| requirement | k/n | rate | 95% interval | tested | baseline | difference | verdict |\n|---|---|---|---|---|---|---|---|"


def table_of_test(results: Sequence[Result]) -> str:
    """The heading of one test (prompt and model) and a row per requirement."""
    first = results[0]
    prompts = sorted({f"{r.prompt}@{r.prompt_version[:7]}" for r in results})
    models = sorted({r.model for r in results})
    head = f"**{code(short_test(first))}** · prompt {', '.join(code(p) for p in prompts)} · model {', '.join(code(m) for m in models)}"
    rows = [
        "| "
        + " | ".join(
            [
                text(requirement(r)),
                k_of_n(r),
                rate(r),
                interval(r),
                tested(r),  # numbers we wrote: nothing to escape
                text(baseline(r)),
                difference(r),
                f"{ICON.get(status(r), '')} {status(r)}".strip(),
            ]
        )
        + " |"
        for r in results
    ]
    return "\n".join([head, "", _HEADER, *rows])


def details(r: Result, *, samples: int = SAMPLES_PER_REQUIREMENT, output_chars: int = OUTPUT_CHARS) -> str:
    """Folded: the per-case counts and the first failing samples, each output in a fence."""
    s = status(r)
    bad = bad_samples(r)
    summary = f"{text(short_test(r))}: {text(requirement(r))}: {s}"
    if bad:
        summary += f", {len(bad)} failing sample{'s' if len(bad) != 1 else ''}"
    parts = [f"<details><summary>{summary}</summary>", ""]
    looked = f"The verdict looked at {r.n + r.errors} samples"
    if len(r.samples) > r.n + r.errors:
        looked += f" ({len(r.samples)} with the baseline comparison's)"
    parts.append(
        f"{looked}; {r.calls} model calls, {r.replayed} samples replayed from the cache; "
        f"false-alarm rate {pct(r.false_alarm)}, miss rate {pct(r.miss)}, tolerance {pct(r.tolerance)}."
    )
    if r.judge is not None:
        parts[-1] += f" Judge ({text(', '.join(r.judge.models))}): {text(judge_cell(r))}."
    if r.n_cases > 1:
        parts += ["", "| case | k/n | errors |", "|---|---|---|"]
        cases = sorted(
            (c for c in r.cases if c.n or c.errors),
            key=lambda c: (c.k / c.n if c.n else 0) * (1 if r.direction == "at_least" else -1),
        )
        for c in cases[:CASES_PER_REQUIREMENT]:
            parts.append(f"| {text(c.case_id)} | {c.k}/{c.n} | {c.errors} |")
        if len(cases) > CASES_PER_REQUIREMENT:
            parts.append(
                f"\n{len(cases) - CASES_PER_REQUIREMENT} more cases left out (worst first); see the HTML report."
            )
    for row in bad[:samples]:
        reason = row.get("reason") or ""
        parts += [
            "",
            f"Case {text(row.get('case_id'))}, sample {row.get('sample')}: **{text(row.get('outcome'))}**"
            + (f": {text(reason)}" if reason else ""),
            "",
        ]
        output = row.get("output")
        parts.append(fence(_clip("(no output)" if output is None else str(output), output_chars, "the HTML report")))
    if len(bad) > samples:
        parts += ["", f"{len(bad) - samples} more failing samples left out; the HTML and JSON reports have them all."]
    parts += ["", "</details>"]
    return "\n".join(parts)


def candidate(c: Mapping[str, Any]) -> str:
    """An optimizer's proposal: where it is registered, its diff, and its held-out numbers."""
    name = c.get("prompt", "prompt")
    head = f"#### 💡 Candidate for {code(name)}"
    if c.get("test_id"):
        head += f" (from {code(str(c['test_id']).split('::', 1)[-1])})"
    lines = [head, ""]
    versions = ""
    if c.get("incumbent_version") and c.get("version"):
        versions = f" {code(str(c['incumbent_version'])[:7])} -> {code(str(c['version'])[:7])}"
    where = candidate_where(c, code)
    lines.append(
        where[0].upper()
        + where[1:]
        + versions
        + (f", proposed by {text(c['proposer'])}" if c.get("proposer") else "")
        + "."
    )
    if c.get("message"):
        lines += ["", text(c["message"])]
    diff = c.get("diff")
    if not diff and "before" in c and "after" in c:
        diff = "".join(
            difflib.unified_diff(
                str(c["before"]).splitlines(keepends=True),
                str(c["after"]).splitlines(keepends=True),
                fromfile=f"{name}@{str(c.get('incumbent_version', 'incumbent'))[:7]}",
                tofile=f"{name}@{str(c.get('version', 'candidate'))[:7]}",
            )
        )
    if diff:
        lines += ["", fence(_clip(str(diff).rstrip("\n"), 12_000, "the prompt registry"), "diff")]
    held = c.get("held_out") or []
    if held:
        lines += [
            "",
            "Held-out test cases (scored once, after the candidate was chosen):",
            "",
            "| requirement | candidate | incumbent | difference | verdict |",
            "|---|---|---|---|---|",
        ]
        for h in held:
            lines.append(
                "| "
                + " | ".join(
                    [
                        text(h.get("requirement", "")),
                        _side(h.get("candidate") or {}),
                        _side(h.get("incumbent") or {}),
                        _diff(h),
                        text(h.get("verdict", "")),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def _side(s: Mapping[str, Any]) -> str:
    if not s:
        return "-"
    out = f"{s.get('k')}/{s.get('n')}" if "k" in s and "n" in s else ""
    if isinstance(s.get("rate"), (int, float)):
        out += f" {100 * s['rate']:.0f}%"
    iv = s.get("interval")
    if isinstance(iv, (list, tuple)) and len(iv) == 2:
        out += f" ({100 * iv[0]:.0f}-{100 * iv[1]:.0f}%)"
    return out.strip() or "-"


def _diff(h: Mapping[str, Any]) -> str:
    d = h.get("difference")
    if not isinstance(d, (int, float)):
        return "-"
    out = f"{100 * d:+.1f}%"
    iv = h.get("difference_interval")
    if isinstance(iv, (list, tuple)) and len(iv) == 2:
        out += f" ({100 * iv[0]:+.1f}% to {100 * iv[1]:+.1f}%)"
    return out


def _by_test(results: Sequence[Result]) -> list[list[Result]]:
    """Results grouped by test, tests with a problem first, each group in the order run."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.test_id, []).append(r)
    ordered = list(groups.values())
    return sorted(ordered, key=lambda g: all(status(r) in (PASS, "PLAN") for r in g))


def render(source: Source, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The report as Markdown, at most ``max_chars`` characters (at most GitHub's limit).

    ``source`` is a session record (``{"results": [...], "candidates": [...], ...}``) or a
    list of results.
    """
    max_chars = min(max_chars, GITHUB_LIMIT)
    record = record_of(source)
    results = results_of(source)
    out: list[str] = []
    left_out: list[str] = []

    def room() -> int:
        return max_chars - len("\n\n".join(out)) - 400  # 400: the note on what was left out

    def add(block: str, what: str) -> bool:
        if len(block) + 2 <= room():
            out.append(block)
            return True
        left_out.append(what)
        return False

    out.append(headline(results, record))
    out.append(_facts(results, record))
    items = problems(results, record)
    if items:
        kept: list[str] = []
        for i, item in enumerate(items):
            if len("\n".join([*kept, item])) + 2 > room() // 2:
                left_out.append(f"{len(items) - i} of the problem sentences")
                break
            kept.append(item)
        out.append("\n".join(kept))
    for c in record.get("candidates") or ():
        add(candidate(c), "an optimizer candidate")
    groups = _by_test(results)
    for i, group in enumerate(groups):
        if not add(table_of_test(group), ""):
            left_out.pop()
            rest = groups[i:]
            n_req = sum(len(g) for g in rest)
            passing = all(status(r) == PASS for g in rest for r in g)
            left_out.append(
                f"the tables of {len(rest)} more tests ({n_req} requirements{', all PASS' if passing else ''})"
            )
            break
    out.append(family(results))
    folded = [r for g in groups for r in g if status(r) not in (PASS, "PLAN")]
    for j, r in enumerate(folded):
        block = details(r)
        if len(block) + 2 > room():
            block = details(r, samples=1, output_chars=200)
        if not add(block, ""):
            left_out.pop()
            left_out.append(f"the failing samples of {len(folded) - j} requirements")
            break
    if left_out:
        out.append(
            "> [!NOTE]\n> Left out to stay under GitHub's comment limit: "
            + "; ".join(left_out)
            + ". The HTML report (`--llmops-report-html`) and the JSON report have everything."
        )
    return "\n\n".join(out) + "\n"
