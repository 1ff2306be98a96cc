"""`llmops` commands: sync, promote, history."""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError
from llmops.redact import redact


class CommandError(LlmopsError):
    """A command that cannot go on; the message names the thing and the fix."""


def _store(args: argparse.Namespace, *, create: bool = True) -> Any:
    from llmops.tracking.mlflow_store import MlflowStore, tracking_uri

    store = MlflowStore(tracking_uri(args.tracking_uri), args.experiment, create=create)
    store.check_reachable()
    return store


def _why(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def cmd_sync(args: argparse.Namespace) -> int:
    from llmops.tracking import spool

    waiting = spool.pending(args.spool_dir)
    if not waiting:
        print(f"nothing to sync in {args.spool_dir}")
        return 0
    store = _store(args)
    for done, path in enumerate(waiting):
        try:
            session_id, run_id = spool.upload(store, path)
        except LlmopsError:
            raise
        except Exception as e:  # the server failed during the upload: say how far it got
            raise CommandError(
                f"MLflow at {store.uri} failed while uploading {path.name} ({_why(e)}); {done} of {len(waiting)} "
                f"session(s) uploaded, {len(waiting) - done} still in {args.spool_dir}: run `llmops sync` again "
                "when the server is back"
            ) from e
        print(f"session {session_id} -> MLflow run {run_id}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    if args.candidate or args.prompt:
        if args.run_id:
            raise CommandError("give either a RUN_ID or --prompt NAME --candidate, not both")
        if not (args.candidate and args.prompt):
            raise CommandError(
                "to accept the optimizer's candidate give both --prompt NAME and --candidate"
                if args.candidate
                else "--prompt names the prompt whose candidate to accept: add --candidate (or give a RUN_ID instead)"
            )
        for line in _store(args, create=False).promote_candidate(args.prompt, args.alias, force=args.force):
            print(line)
        return 0
    if not args.run_id:
        raise CommandError(
            "give the RUN_ID to promote, or --prompt NAME --candidate to accept the optimizer's candidate"
        )
    store = _store(args, create=False)
    for line in store.promote(args.run_id, args.alias, force=args.force):
        print(line)
    print(f"run {args.run_id} is now baseline @{args.alias} in experiment '{args.experiment}'")
    return 0


@dataclass(frozen=True)
class HistoryRow:
    when: int  # ms since the epoch
    run: str
    version: str
    requirement: str
    rate: float
    low: float
    high: float
    verdict: str
    calls: int
    commit: str


def history_rows(store: Any, prompt: str) -> list[HistoryRow]:
    """One row per (run, requirement) of ``prompt``, oldest first."""
    rows = []
    for run in store.runs():
        record = store.load_record(run.info.run_id)
        for r in record["results"]:
            if r["prompt"] != prompt:
                continue
            sign = ">=" if r["direction"] == "at_least" else "<="
            rows.append(
                HistoryRow(
                    int(run.info.start_time),
                    run.info.run_id,
                    r["prompt_version"],
                    f"{r['description']} {sign} {r['threshold']:g}",
                    r["rate"],
                    r["interval"][0],
                    r["interval"][1],
                    r["verdict"],
                    r["calls"],
                    record.get("git", {}).get("commit", "")[:7],
                )
            )
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    import datetime

    store = _store(args)
    rows = history_rows(store, args.prompt)
    if not rows:
        print(f"no runs with prompt {args.prompt!r} in experiment '{args.experiment}'")
        return 1
    print(f"{'date':16}  {'version':8}  {'commit':7}  {'verdict':7}  {'rate':>5}  {'95% CI':>9}  requirement")
    for row in rows:
        when = datetime.datetime.fromtimestamp(row.when / 1000).strftime("%Y-%m-%d %H:%M")
        ci = f"{100 * row.low:.0f}-{100 * row.high:.0f}%"
        print(
            f"{when:16}  {row.version[:8]:8}  {row.commit:7}  {row.verdict:7}  {100 * row.rate:4.0f}%  {ci:>9}  {row.requirement}"
        )
    if args.plot:
        plot_history(rows, args.prompt, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def plot_history(rows: list[HistoryRow], prompt: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import datetime

    import matplotlib.pyplot as plt

    runs = sorted({(r.when, r.run, r.version) for r in rows})
    position = {run: i for i, (_, run, _) in enumerate(runs)}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for req in sorted({r.requirement for r in rows}):
        mine = [r for r in rows if r.requirement == req]
        x = [position[r.run] for r in mine]
        yerr = [[r.rate - r.low for r in mine], [r.high - r.rate for r in mine]]
        ax.errorbar(x, [r.rate for r in mine], yerr=yerr, marker="o", capsize=3, label=req)
    labels = [
        datetime.datetime.fromtimestamp(when / 1000).strftime("%m-%d %H:%M") + f"\n{version[:7]}"
        for when, _, version in runs
    ]
    ax.set_xticks(range(len(runs)), labels, fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("run (date, prompt version)")
    ax.set_ylabel("rate, with 95% interval")
    ax.set_title(f"llmops history: {prompt}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_optimize(args: argparse.Namespace) -> int:
    """Run pytest on the tests with --llmops-optimize=on-fail; its exit code is ours."""
    import shlex
    import subprocess

    command = [
        sys.executable,
        "-m",
        "pytest",
        *args.nodeids,
        "--llmops-optimize=on-fail",
        *shlex.split(args.pytest_args),
    ]
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmops", description="llmops: statistical prompt tests")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (MLFLOW_TRACKING_URI wins when set)")
    common.add_argument("--experiment", default="llmops", help="MLflow experiment (default llmops)")
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sync", parents=[common], help="upload sessions kept in the local spool")
    p.add_argument("--spool-dir", type=Path, default=Path(".llmops") / "spool")
    p.set_defaults(fn=cmd_sync)

    p = sub.add_parser(
        "promote",
        parents=[common],
        help="mark a run as the baseline, or accept the optimizer's candidate (--prompt NAME --candidate)",
    )
    p.add_argument("run_id", nargs="?", help="the run to mark as the baseline")
    p.add_argument("--prompt", default=None, help="with --candidate: the prompt whose candidate to accept")
    p.add_argument(
        "--candidate",
        action="store_true",
        help="move the registry alias prompts:/NAME@ALIAS to the version aliased candidate (the optimizer's proposal)",
    )
    p.add_argument("--alias", default="baseline", help="baseline alias (default baseline)")
    p.add_argument(
        "--force",
        action="store_true",
        help="promote a session that failed, errored, regressed or was partial; accept a candidate that misses "
        "a requirement on its held-out cases; move an alias another experiment set",
    )
    p.set_defaults(fn=cmd_promote)

    p = sub.add_parser("history", parents=[common], help="a prompt's scores over time")
    p.add_argument("prompt")
    p.add_argument("--plot", type=Path, default=None, help="also write a PNG plot here")
    p.set_defaults(fn=cmd_history)

    p = sub.add_parser(
        "optimize",
        help="run the named tests with the optimizer on: a candidate for each prompt that fails or regresses",
    )
    p.add_argument("nodeids", nargs="+", help="pytest node ids or paths, e.g. tests/test_triage.py::test_category")
    p.add_argument("--pytest-args", default="", help="more pytest arguments, quoted, e.g. '--llmops-baseline=baseline'")
    p.set_defaults(fn=cmd_optimize)

    from llmops.report.commands import add_cli as add_report

    add_report(sub)  # llmops report: render, merge shards, comment on the pull request

    from llmops.cache import add_cli as add_cache

    add_cache(sub)  # llmops cache stats | clear | prune --older-than

    args = parser.parse_args(argv)
    from llmops.tracking import quiet_mlflow

    try:
        with quiet_mlflow():
            return int(args.fn(args))
    except KeyboardInterrupt:
        print(f"llmops {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # One line that names the thing and the fix; the traceback only when asked for.
        if getattr(args, "debug", False):
            traceback.print_exc()
        if isinstance(e, LlmopsError):
            message = str(e)
        else:
            message = f"unexpected {_why(e)}; rerun with --debug for the traceback"
        print(redact(f"llmops {args.command}: {' '.join(message.split())}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
