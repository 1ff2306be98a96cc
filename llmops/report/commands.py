"""`llmops report`: turn session records into the gate's outputs.

    llmops report results.json --md report.md --summary --comment
    llmops report --merge results-*.json --json merged.json --md report.md --mlflow

One record, or the shards of one run merged into one (``llmops.report.merge``); then the
Markdown report (to a file, to the job summary, to the pull request as one comment that is
updated in place), the record itself, and one MLflow run.  The exit code is the gate's
verdict: 0 passed, 1 failed (a FAIL, an ERROR, a regression, a missing requirement),
2 a usage or service error, with one line that names the fix.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, LlmopsError
from llmops.report.merge import add_missing, load_record, merge, verdict

DESCRIPTION = (
    "Report llmops results: one results .json, or shards merged into one (--merge), as Markdown (--md, "
    "--summary), one pull-request comment updated in place (--comment) and one MLflow run (--mlflow). "
    "Exit code: 0 the gate passed, 1 it failed, 2 a usage or service error."
)


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the ``llmops`` command's sub-parsers."""
    p = subparsers.add_parser(
        "report",
        help="report results: Markdown, job summary, PR comment, merged shards, MLflow",
        description=DESCRIPTION,
    )
    _arguments(p)
    p.set_defaults(fn=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", type=Path, help="results .json files (pytest --llmops-report-json)")
    p.add_argument("--merge", action="store_true", help="merge the files: shards of one suite, one verdict")
    p.add_argument("--force", action="store_true", help="with --merge: accept shards from different commits")
    p.add_argument("--md", type=Path, metavar="PATH", help="write the Markdown report here ('-': stdout)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the (merged) results record here")
    p.add_argument("--html", type=Path, metavar="PATH", help="write the self-contained HTML report here")
    p.add_argument("--summary", action="store_true", help="append the Markdown report to $GITHUB_STEP_SUMMARY")
    p.add_argument(
        "--comment",
        action="store_true",
        help="create or update the one llmops comment on the pull request (GITHUB_TOKEN, pull-requests: write)",
    )
    p.add_argument("--repo", help="OWNER/NAME for --comment (default $GITHUB_REPOSITORY)")
    p.add_argument("--pr", type=int, help="pull request number for --comment (default: from the GitHub event)")
    p.add_argument("--baseline", help="alias, run id or results .json: its requirements that did not run are missing")
    p.add_argument("--allow-missing", action="store_true", help="missing requirements do not fail the verdict")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when the gate fails (errors still exit 2)")
    p.add_argument("--mlflow", action="store_true", help="log the (merged) record as one MLflow run")
    p.add_argument(
        "--promote", metavar="ALIAS", help="with --mlflow: mark the run as the baseline ALIAS (unless the gate failed)"
    )
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (MLFLOW_TRACKING_URI wins when set)")
    p.add_argument("--experiment", default="llmops", help="MLflow experiment (default llmops)")


def _expand(files: list[Path]) -> list[Path]:
    """Paths as given; a pattern the shell did not expand (quoted, or on Windows) is globbed here."""
    out: list[Path] = []
    for f in files:
        if not f.exists() and glob.has_magic(str(f)):
            matches = sorted(glob.glob(str(f)))
            if not matches:
                raise ConfigError(f"no results files match {str(f)!r}; did the shard jobs upload them?")
            out += [Path(m) for m in matches]
        else:
            out.append(f)
    return out


def build(args: argparse.Namespace) -> dict[str, Any]:
    """The record to report on: one file, or the merge of several."""
    files = _expand(list(args.files))
    if not files:
        raise ConfigError("no results file given: `llmops report results.json` (written by --llmops-report-json)")
    if len(files) > 1 and not args.merge:
        raise ConfigError(f"{len(files)} results files given: pass --merge to merge shards into one verdict")
    if args.merge:
        record = merge([(str(f), load_record(f)) for f in files], force=args.force)
    else:
        record = load_record(files[0])
    if args.baseline:
        from llmops.baseline import load_baseline

        record = add_missing(record, load_baseline(args.baseline, args.tracking_uri, args.experiment))
    return record


def run(args: argparse.Namespace) -> int:
    if args.promote and not args.mlflow:
        raise ConfigError("--promote marks an MLflow run: add --mlflow")
    record = build(args)
    if args.merge or args.baseline or args.allow_missing:
        # Missing requirements are judged here, where every shard's results are known (the
        # shards allow what the others run); the reports say what this verdict says.
        record["settings"] = {**(record.get("settings") or {}), "allow_missing": bool(args.allow_missing)}
    gate = verdict(record)
    out = sys.stderr if str(args.md) == "-" else sys.stdout
    if args.json:
        from llmops.report.json import dumps

        _write(args.json, dumps(record))
    markdown = ""
    if args.md or args.summary or args.comment:
        from llmops.report.markdown import render

        markdown = render(record)
    if args.md:
        if str(args.md) == "-":
            sys.stdout.write(markdown)
        else:
            _write(args.md, markdown)
    if args.summary:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if not summary:
            raise ConfigError("--summary needs $GITHUB_STEP_SUMMARY (set inside GitHub Actions); use --md PATH")
        with open(summary, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")
    if args.mlflow:
        print(_log(record, args), file=out)
    if args.comment:
        from llmops.report.github import post_report

        print(post_report(markdown, repo=args.repo, number=args.pr), file=out)
    if args.html:
        from llmops.report import html

        _write(args.html, html.render(record))
    print(gate.line(), file=out)
    for reason in gate.reasons[:20]:
        print(f"  {reason}", file=out)
    if len(gate.reasons) > 20:
        print(f"  ... and {len(gate.reasons) - 20} more", file=out)
    return 1 if gate.failed and not args.exit_zero else 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _log(record: dict[str, Any], args: argparse.Namespace) -> str:
    """One MLflow run for the record (spooled when the server is down), then the alias."""
    from llmops.tracking import promote_session, publish

    run_id, line = publish(record, args.tracking_uri, args.experiment, Path(".llmops") / "spool")
    if args.promote:
        # As --llmops-promote: a failed, regressed or partial session is not made the baseline.
        line += "\n" + promote_session(record, run_id, args.tracking_uri, args.experiment, args.promote)
    return line


def main(argv: list[str] | None = None) -> int:
    """``llmops report`` on its own (tests, ``python -m llmops.report.commands``)."""
    parser = argparse.ArgumentParser(prog="llmops report", description=DESCRIPTION)
    _arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LlmopsError as e:
        print(f"llmops report: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
