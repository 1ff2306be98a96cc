"""The HTML report: one self-contained file, to open from a CI artifact.

Inline CSS and inline SVG, no script and no external request (a Content-Security-Policy
says so to the browser as well).  Per requirement: a plot of its interval against the
threshold and the rate it is tested against, and of the difference with the baseline
against zero and the tolerance; then every sample looked at, with the model's raw output.

Model output is untrusted: every text goes through ``html.escape`` (quotes included) and
every attribute is double-quoted, so an output holding ``<script>`` is shown, not run.
"""

from __future__ import annotations

import difflib
import html
import math
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
    status,
    tested,
    totals,
    wall_time,
    why_not_decided,
)
from llmops.report.terminal import family

__all__ = ["render"]

#: Sample rows kept per requirement (the JSON report has them all).
MAX_ROWS = 5000

_COLOR = {
    PASS: "#1a7f37",
    FAIL: "#cf222e",
    REGRESSED: "#bc4c00",
    ERROR: "#8250df",
    "PLAN": "#57606a",
    WARNING: "#9a6700",
}

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}
.banner{border-radius:8px;padding:14px 18px;color:#fff;margin-bottom:12px}
.banner .facts{opacity:.92;font-size:13px;margin-top:4px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 18px;margin:12px 0}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border-bottom:1px solid #d8dee4;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:12px;color:#57606a;white-space:nowrap}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px;font-weight:600;white-space:nowrap}
.problems li{margin:4px 0}
.muted{color:#57606a;font-size:12px}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:#f6f8fa;border:1px solid #eaeef2;border-radius:4px;padding:4px 6px;max-height:320px;overflow:auto}
pre.diff span{display:block}pre.diff .add{background:#dafbe1}pre.diff .del{background:#ffebe9}pre.diff .hunk{color:#8250df}
details{margin:6px 0}summary{cursor:pointer;font-weight:600;color:#0969da}
tr.bad td{background:#fff8f8}
.tag{display:inline-block;border:1px solid;border-radius:4px;padding:0 5px;font-size:12px;white-space:nowrap}
a.anchor{color:inherit;text-decoration:none}a.anchor:hover{text-decoration:underline}
td.out{width:46%}td.reason{width:26%}
svg{display:block;width:100%;max-width:1000px;height:auto;margin:6px 0}
"""


def esc(value: Any) -> str:
    """Text for HTML content or a double-quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def badge(word: str) -> str:
    return f'<span class="badge" style="background:{_COLOR.get(word, "#57606a")}">{esc(word)}</span>'


# -- the plot ---------------------------------------------------------------------------------


def _domain(values: Sequence[float], lo: float, hi: float, step: float = 0.1) -> tuple[float, float]:
    vs = [v for v in values if v is not None and math.isfinite(v)]
    a = max(lo, math.floor((min(vs) - step / 2) / step) * step) if vs else lo
    b = min(hi, math.ceil((max(vs) + step / 2) / step) * step) if vs else hi
    if b - a < step:
        a, b = max(lo, a - step), min(hi, b + step)
    return a, b


def _ticks(a: float, b: float) -> list[float]:
    span = b - a
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0) if span / s <= 10)
    first = math.ceil(a / step - 1e-9) * step
    out, t = [], first
    while t <= b + 1e-9:
        out.append(round(t, 6))
        t += step
    return out


class _Row:
    """One horizontal scale of a plot: a band of zones, marker lines with labels, an interval bar."""

    # The scale runs from LEFT to WIDTH - RIGHT; the value is written in the RIGHT column, clear of the lines.
    LEFT, RIGHT, WIDTH, HEIGHT = 110, 270, 960, 62

    def __init__(self, y: float, a: float, b: float, signed: bool) -> None:
        self.y, self.a, self.b, self.signed = y, a, b, signed
        self.parts: list[str] = []

    def x(self, v: float) -> float:
        inner = self.WIDTH - self.LEFT - self.RIGHT
        return self.LEFT + inner * (min(max(v, self.a), self.b) - self.a) / (self.b - self.a)

    def label(self, v: float) -> str:
        if abs(v) < 1e-9:
            return "0%"
        return f"{100 * v:+.0f}%" if self.signed else f"{100 * v:.0f}%"

    def title(self, text: str) -> None:
        self.parts.append(f'<text x="0" y="{self.y + 31}" font-size="12" fill="#1f2328">{esc(text)}</text>')

    def zone(self, v0: float, v1: float, color: str) -> None:
        x0, x1 = sorted((self.x(v0), self.x(v1)))
        self.parts.append(f'<rect x="{x0:.1f}" y="{self.y + 17}" width="{x1 - x0:.1f}" height="20" fill="{color}"/>')

    def axis(self) -> None:
        y = self.y + 37
        self.parts.append(f'<line x1="{self.LEFT}" y1="{y}" x2="{self.WIDTH - self.RIGHT}" y2="{y}" stroke="#8c959f"/>')
        for t in _ticks(self.a, self.b):
            x = self.x(t)
            self.parts.append(
                f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#8c959f"/>'
                f'<text x="{x:.1f}" y="{y + 16}" font-size="10" text-anchor="middle" fill="#57606a">{self.label(t)}</text>'
            )

    def marker(self, v: float, text: str, *, dashed: bool, color: str = "#1f2328", side: str = "right") -> None:
        """A vertical line at v, labelled above the band on the given side of the line."""
        x = self.x(v)
        dash = ' stroke-dasharray="4 3"' if dashed else ' stroke-width="2"'
        anchor, dx = ("start", 4) if side == "right" else ("end", -4)
        self.parts.append(
            f'<line x1="{x:.1f}" y1="{self.y + 4}" x2="{x:.1f}" y2="{self.y + 41}" stroke="{color}"{dash}/>'
            f'<text x="{x + dx:.1f}" y="{self.y + 12}" font-size="11" text-anchor="{anchor}" fill="{color}">{esc(text)}</text>'
        )

    def bar(self, lo: float, hi: float, mid: float, color: str, text: str) -> None:
        y = self.y + 27
        x0, x1 = self.x(lo), self.x(hi)
        self.parts.append(
            f'<line x1="{x0:.1f}" y1="{y}" x2="{x1:.1f}" y2="{y}" stroke="{color}" stroke-width="6" stroke-linecap="round">'
            f"<title>{esc(text)}</title></line>"
            f'<circle cx="{self.x(mid):.1f}" cy="{y}" r="5" fill="#fff" stroke="{color}" stroke-width="2"/>'
        )
        self.parts.append(
            f'<text x="{self.WIDTH - self.RIGHT + 18}" y="{y + 4}" font-size="12" font-weight="600" '
            f'fill="{color}">{esc(text)}</text>'
        )


def plot(r: Result) -> str:
    """An inline SVG: the rate's interval against the two tested rates; the baseline difference under it."""
    rows: list[_Row] = []
    at_least = r.direction == "at_least"
    scale = "pass rate" if at_least else "violation rate"
    good, bad = r.tested
    lo, hi = r.interval
    decided = r.n > 0 and math.isfinite(lo) and math.isfinite(hi)
    a, b = _domain([good, bad, *((lo, hi) if decided else ())], 0.0, 1.0)
    row = _Row(0, a, b, signed=False)
    row.title(scale)
    row.zone(good, b if at_least else a, "#dafbe1")  # meets the requirement
    row.zone(bad, a if at_least else b, "#ffebe9")  # the rate the test must fail
    row.axis()
    # The required rate is labelled on its passing side, the tested-against rate on its failing side.
    row.marker(good, f"required {pct(good)}", dashed=False, side="right" if at_least else "left")
    row.marker(bad, f"tested against {pct(bad)}", dashed=True, side="left" if at_least else "right")
    if decided:
        row.bar(
            lo, hi, r.rate, _COLOR.get(status(r), "#57606a"), f"{rate(r)} ({k_of_n(r)}), 95% interval {interval(r)}"
        )
    rows.append(row)
    c = r.comparison
    if c is not None and math.isfinite(c.difference) and all(math.isfinite(v) for v in c.interval):
        tol = c.tolerance
        edge = max(abs(c.interval[0]), abs(c.interval[1]), 1.5 * tol, 0.05)
        a2, b2 = _domain([-edge, edge], -1.0, 1.0, step=0.05)
        worse = -tol if at_least else tol  # a regression: the pass rate drops, violations rise
        row2 = _Row(_Row.HEIGHT, a2, b2, signed=True)
        row2.title("vs baseline")
        row2.zone(worse, a2 if at_least else b2, "#fff1e5")
        row2.axis()
        row2.marker(0, f"baseline {c.base_version[:7]}", dashed=False, side="right" if at_least else "left")
        row2.marker(
            worse, f"tolerance {row2.label(worse)}", dashed=True, color="#bc4c00", side="left" if at_least else "right"
        )
        color = {"regressed": _COLOR[REGRESSED], ERROR: _COLOR[ERROR]}.get(c.verdict, _COLOR[PASS])
        row2.bar(c.interval[0], c.interval[1], c.difference, color, f"{c.verdict} {difference(r)}")
        rows.append(row2)
    height = _Row.HEIGHT * len(rows)
    label = f"{requirement(r)}: {rate(r)}, 95% interval {interval(r)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_Row.WIDTH} {height}" width="{_Row.WIDTH}" '
        f'height="{height}" role="img" aria-label="{esc(label)}">'
        + "".join(p for row in rows for p in row.parts)
        + "</svg>"
    )


# -- sections ---------------------------------------------------------------------------------


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
        parts.append(judges)  # apart from the model calls: the judge is not the model under test
    wall = wall_time(record)
    if wall is not None:
        parts.append(f"wall time {seconds(wall)}")
    p50, p95 = latency(results)
    if p50 is not None:
        parts.append(f"latency p50 {seconds(p50)} / p95 {seconds(p95)} (slowest requirement)")
    git = record.get("git") or {}
    if git.get("commit"):
        parts.append(f"commit {str(git['commit'])[:7]}" + (f" on {git['branch']}" if git.get("branch") else ""))
    return " · ".join(esc(p) for p in parts)


def _problems(results: Sequence[Result], record: Mapping[str, Any]) -> str:
    items = []
    for kind, name, sentence, i in problem_list(results, record):
        where = f"<code>{esc(name)}</code>" if name else ""
        if where and i is not None:
            # the full sentence is under the requirement, one click away: here, the numbers
            r = results[i]
            where = f'<a class="anchor" href="#req-{i}">{where}</a>'
            if kind == FAIL:
                sentence = f"{requirement(r)}: {rate(r)} ({k_of_n(r)}), 95% interval {interval(r)}, tested {tested(r)}"
            elif kind == REGRESSED and r.comparison is not None:
                base = r.comparison.base_version[:7]
                sentence = (
                    f"{requirement(r)}: {difference(r)} against the baseline {base} over {r.comparison.pairs} pairs"
                )
        items.append(f"<li>{badge(kind)} {where}{': ' if where else ''}{esc(sentence)}</li>")
    if not items:
        return ""
    return f'<section class="card"><h2 style="margin-top:0">What went wrong</h2><ul class="problems">{"".join(items)}</ul></section>'


def _diff_html(diff: str) -> str:
    """A unified diff, one block per line (so a changed line is shaded across the width)."""
    lines = []
    for line in diff.splitlines():
        cls = "add" if line.startswith("+") and not line.startswith("+++") else "line"
        cls = "del" if line.startswith("-") and not line.startswith("---") else cls
        cls = "hunk" if line.startswith("@@") else cls
        lines.append(f'<span class="{cls}">{esc(line) or " "}</span>')
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def _side(s: Mapping[str, Any]) -> str:
    if not s:
        return "-"
    out = f"{s.get('k')}/{s.get('n')}" if "k" in s and "n" in s else ""
    if isinstance(s.get("rate"), (int, float)):
        out += f" {100 * s['rate']:.0f}%"
    iv = s.get("interval")
    if isinstance(iv, (list, tuple)) and len(iv) == 2 and all(isinstance(v, (int, float)) for v in iv):
        out += f" ({100 * iv[0]:.0f}-{100 * iv[1]:.0f}%)"
    return out.strip() or "-"


def candidate(c: Mapping[str, Any]) -> str:
    name = str(c.get("prompt", "prompt"))
    out = [f'<section class="card"><h2 style="margin-top:0">Candidate for <code>{esc(name)}</code></h2>']
    meta = candidate_where(c)
    if c.get("incumbent_version") and c.get("version"):
        meta += f" · {str(c['incumbent_version'])[:7]} -> {str(c['version'])[:7]}"
    if c.get("proposer"):
        meta += f" · proposed by {c['proposer']}"
    out.append(f'<div class="muted">{esc(meta)}</div>')
    if c.get("message"):
        out.append(f"<p>{esc(c['message'])}</p>")
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
        out.append(_diff_html(str(diff)))
    held = c.get("held_out") or []
    if held:
        out.append(
            "<h3>Held-out test cases</h3><table><tr><th>requirement</th><th>candidate</th><th>incumbent</th>"
            "<th>difference</th><th>verdict</th></tr>"
        )
        for h in held:
            d = h.get("difference")
            dtext = f"{100 * d:+.1f}%" if isinstance(d, (int, float)) else "-"
            iv = h.get("difference_interval")
            if isinstance(d, (int, float)) and isinstance(iv, (list, tuple)) and len(iv) == 2:
                dtext += f" ({100 * iv[0]:+.1f}% to {100 * iv[1]:+.1f}%)"
            out.append(
                f'<tr><td>{esc(h.get("requirement", ""))}</td><td class="num">{esc(_side(h.get("candidate") or {}))}</td>'
                f'<td class="num">{esc(_side(h.get("incumbent") or {}))}</td><td class="num">{esc(dtext)}</td>'
                f"<td>{esc(h.get('verdict', ''))}</td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _requirement_table(results: Sequence[Result]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("requirement", "k/n", "rate", "95% interval", "tested", "baseline", "difference", "calls", "verdict")
    )
    rows = []
    for r in results:
        calls = f"{r.calls}" + (f" ({r.replayed} replayed)" if r.replayed else "")
        if r.judge is not None:
            calls += f" + {r.judge.calls} judge"
        rows.append(
            f'<tr><td>{esc(requirement(r))}</td><td class="num">{esc(k_of_n(r))}</td><td class="num">{esc(rate(r))}</td>'
            f'<td class="num">{esc(interval(r))}</td><td class="num">{esc(tested(r))}</td><td>{esc(baseline(r))}</td>'
            f'<td class="num">{esc(difference(r))}</td><td class="num">{esc(calls)}</td><td>{badge(status(r))}</td></tr>'
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cases(r: Result) -> str:
    if r.n_cases <= 1:
        return ""
    rows = "".join(
        f'<tr><td>{esc(c.case_id)}</td><td class="num">{c.k}/{c.n}</td><td class="num">{c.errors}</td>'
        f"<td>{esc(c.example)}</td></tr>"
        for c in r.cases
    )
    return (
        f"<details><summary>Cases ({r.n_cases})</summary><table><tr><th>case</th><th>k/n</th><th>errors</th>"
        f"<th>a failing sample's reason</th></tr>{rows}</table></details>"
    )


def _outcome(outcome: str) -> str:
    color = {"pass": _COLOR[PASS], "clean": _COLOR[PASS], "fail": _COLOR[FAIL], "violation": _COLOR[FAIL]}.get(
        outcome, _COLOR[ERROR]
    )
    return f'<span class="tag" style="color:{color};border-color:{color}">{esc(outcome)}</span>'


def _samples(r: Result, rows: Sequence[Mapping[str, Any]], title: str, open_: bool) -> str:
    if not rows:
        return ""
    shown = rows[:MAX_ROWS]
    body = []
    for row in shown:
        outcome = str(row.get("outcome", ""))
        bad = outcome in ("fail", "violation", "model error", "check error")
        output = row.get("output")
        version = str(row.get("prompt_version") or "")
        which = (
            ""
            if not version or version == r.prompt_version
            else f'<div class="muted">baseline @{esc(version[:7])}</div>'
        )
        body.append(
            f'<tr class="{"bad" if bad else "ok"}"><td>{esc(row.get("case_id"))}</td><td class="num">{esc(row.get("sample"))}</td>'
            f'<td>{_outcome(outcome)}{which}</td><td class="reason">{esc(row.get("reason", ""))}</td>'
            f'<td class="out"><pre>{esc("(no output)" if output is None else output)}</pre></td>'
            f'<td class="num">{esc(seconds(row.get("latency_s")))}</td></tr>'
        )
    more = (
        f'<div class="muted">{len(rows) - len(shown)} more rows left out; the JSON report has them all.</div>'
        if len(rows) > len(shown)
        else ""
    )
    return (
        f"<details{' open' if open_ else ''}><summary>{esc(title)}</summary><table><tr><th>case</th><th>sample</th>"
        f"<th>outcome</th><th>reason</th><th>output</th><th>latency</th></tr>{''.join(body)}</table>{more}</details>"
    )


def _requirement(r: Result, i: int) -> str:
    s = status(r)
    parts = [f'<h3 id="req-{i}">{badge(s)} {esc(requirement(r))}</h3>', plot(r)]
    sentence = why_not_decided(r) if s == ERROR else r.message
    if sentence:
        parts.append(f"<p>{esc(sentence)}</p>")
    if r.comparison is not None and r.comparison.message and s != ERROR:
        parts.append(f"<p>{esc(r.comparison.message)}</p>")
    if r.judge is not None:
        parts.append(f'<p class="muted">judge {esc(", ".join(r.judge.models))}: {esc(judge_cell(r))}</p>')
        if r.judge.warning:
            parts.append(f"<p>{badge(WARNING)} {esc(r.judge.warning)}</p>")
    parts.append(_cases(r))
    bad = bad_samples(r)
    if bad:
        parts.append(_samples(r, bad, f"Failing samples ({len(bad)})", open_=s != PASS and len(bad) <= 50))
    parts.append(_samples(r, list(r.samples), f"All samples looked at ({len(r.samples)})", open_=False))
    return "".join(parts)


def render(source: Source, *, title: str = "llmops report") -> str:
    """The report as one HTML document; ``source`` is a session record or a list of results."""
    record = record_of(source)
    results = results_of(source)
    word = gate_status(results, record)
    counts = gate_counts(results, record)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script, no request: whatever a model wrote, the browser runs and fetches nothing.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}: {esc(word)}</title><style>{_CSS}</style></head><body><main>",
        f'<div class="banner" style="background:{_COLOR.get(word, "#57606a")}"><h1>llmops: {esc(word)}</h1>'
        f'<div>{esc(counts)}</div><div class="facts">{_facts(results, record)}</div></div>',
        _problems(results, record),
    ]
    out += [candidate(c) for c in record.get("candidates") or ()]
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.test_id, []).append(r)
    index = {id(r): i for i, r in enumerate(results)}
    for test_id, group in groups.items():
        prompts = ", ".join(sorted({f"{r.prompt}@{r.prompt_version[:7]}" for r in group}))
        models = ", ".join(sorted({r.model for r in group}))
        out.append(
            f'<section class="card"><h2 style="margin-top:0"><code>{esc(test_id or "-")}</code></h2>'
            f'<div class="muted">prompt {esc(prompts)} · model {esc(models)}</div>'
            + _requirement_table(group)
            + "".join(_requirement(r, index[id(r)]) for r in group)
            + "</section>"
        )
    out.append(f'<p class="muted">{esc(family(results))}</p>')
    out.append("</main></body></html>")
    return "\n".join(p for p in out if p)
