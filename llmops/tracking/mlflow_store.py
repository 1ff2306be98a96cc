"""MLflow: one run per session, metrics per requirement, the sample table, the prompt registry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from typing import Any

from llmops.checks.judge import JudgeStats
from llmops.errors import LlmopsError
from llmops.redact import redact
from llmops.tracking.record import problems, run_name

RESULTS_ARTIFACT = "llmops/results.json"
SAMPLES_ARTIFACT = "llmops/samples.json"
SESSION_TAG = "llmops.session_id"
COMPLETE_TAG = "llmops.complete"
ALIAS_TAG = "llmops.alias."  # experiment tag: llmops.alias.<alias> = run id; prompt tag: "<run id> <experiment>"
VERSION_TAG = "llmops.version"  # prompt-version tag: our content hash
CANDIDATE = "candidate"  # the registry alias of the optimizer's proposal (never a production alias)
PARENT_TAG = "llmops.parent_version"  # candidate tags: the version it was proposed for,
RECOVERY_TAG = "llmops.recovery"  # its held-out recovery,
TEST_TAG = "llmops.test."  # and per requirement its held-out rate and verdict: "0.8167 (meets)"
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}
_BACK = {v: k for k, v in _ROLES.items()}


class TrackingUnavailable(LlmopsError):
    """The tracking server does not answer."""


class TrackingError(LlmopsError):
    """A run, experiment or promotion that MLflow cannot give us; the message says what to do."""


def tracking_uri(configured: str | None) -> str:
    """MLFLOW_TRACKING_URI when set, else the option/ini value, else MLflow's default store."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if configured:
        return configured
    import mlflow

    return str(mlflow.get_tracking_uri())


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", text)


def metric_prefix(result: dict[str, Any], taken: set[str]) -> str:
    test = result.get("test_id", "").split("::")[-1] or "session"
    prefix = _key(f"{test}/{result['prompt']}/{result['check']}.{result['direction']}_{result['threshold']:g}")
    if result.get("check_params"):
        digest = hashlib.sha256(json.dumps(result["check_params"], sort_keys=True).encode()).hexdigest()[:6]
        prefix += f".{digest}"
    base, i = prefix, 2
    while prefix in taken:
        prefix, i = f"{base}.{i}", i + 1
    taken.add(prefix)
    return prefix


def to_mlflow_template(parts: list[list[str]] | list[tuple[str, str]]) -> str | list[dict[str, str]]:
    """Our {var} templates to MLflow's {{var}} form (a chat list when there are several messages)."""
    import string

    def convert(text: str) -> str:
        out = []
        for literal, field, _, _ in string.Formatter().parse(text):
            out.append(literal)
            if field:
                out.append("{{" + field + "}}")
        return "".join(out)

    if len(parts) == 1 and parts[0][0] == "human":
        return convert(parts[0][1])
    return [{"role": _ROLES.get(role, "user"), "content": convert(text)} for role, text in parts]


def from_mlflow_template(template: Any) -> list[tuple[str, str]]:
    def convert(text: str) -> str:
        pieces = re.split(r"\{\{\s*(\w+)\s*\}\}", text)
        out = []
        for i, piece in enumerate(pieces):
            out.append("{" + piece + "}" if i % 2 else piece.replace("{", "{{").replace("}", "}}"))
        return "".join(out)

    if isinstance(template, str):
        return [("human", convert(template))]
    return [(_BACK.get(m["role"], "human"), convert(m["content"])) for m in template]


def require_existing_store(uri: str) -> None:
    """A local store (sqlite file or directory) must exist: reading it must not create it."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else parsed.path
        if path in ("", ":memory:") or os.path.exists(path):
            return
    elif parsed.scheme in ("", "file"):
        if os.path.isdir(parsed.path if parsed.scheme == "file" else uri):
            return
    else:
        return
    raise TrackingUnavailable(
        f"there is no MLflow store at {uri}; point --tracking-uri (or MLFLOW_TRACKING_URI) at the store your "
        "sessions log to"
    )


class MlflowStore:
    def __init__(self, uri: str, experiment: str = "llmops", *, create: bool = True) -> None:
        """``create=False``: an error rather than a new local store when none is at ``uri``."""
        from mlflow import MlflowClient

        if not create:
            require_existing_store(uri)
        self.uri = uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self._experiment_id: str | None = None

    def check_reachable(self, timeout: float = 10.0) -> None:
        """Raise TrackingUnavailable quickly if an http(s) tracking server does not answer."""
        if not self.uri.startswith(("http://", "https://")):
            return
        try:
            urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=timeout).read()
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise TrackingUnavailable(
                f"MLflow tracking server {self.uri} is unreachable ({e}); start it, or point --tracking-uri "
                "(or MLFLOW_TRACKING_URI) at one that runs"
            ) from None

    def experiment_id(self) -> str:
        """The experiment's id, creating it: for writing a session (asked once per store)."""
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = exp.experiment_id if exp else self.client.create_experiment(self.experiment)
        return self._experiment_id

    def existing_experiment_id(self) -> str:
        """The experiment's id; an error naming it when it does not exist (reading never creates one)."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            names = ", ".join(sorted(e.name for e in self.client.search_experiments(max_results=20)))
            raise TrackingError(
                f"experiment '{self.experiment}' does not exist at {self.uri} (there: {names[:200] or 'none'}); "
                "pass --experiment with the experiment your sessions log to"
            )
        return str(exp.experiment_id)

    def get_run(self, run_id: str) -> Any:
        """The run of this experiment with this id; an error naming it otherwise."""
        from mlflow.exceptions import MlflowException

        experiment_id = self.existing_experiment_id()
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise TrackingError(
                f"run {run_id} does not exist at {self.uri}; give a run id of experiment '{self.experiment}' "
                "(`llmops history PROMPT` and the MLflow UI list them)"
            ) from None
        if run.info.experiment_id != experiment_id:
            other = self.client.get_experiment(run.info.experiment_id).name
            raise TrackingError(
                f"run {run_id} is in experiment '{other}', not '{self.experiment}'; pass --experiment '{other}'"
            )
        if run.data.tags.get(COMPLETE_TAG) != "true":
            raise TrackingError(f"run {run_id} is not a complete llmops session; promote a run that llmops logged")
        return run

    def find_run(self, session_id: str) -> Any | None:
        runs = self.client.search_runs([self.experiment_id()], filter_string=f"tags.`{SESSION_TAG}` = '{session_id}'")
        return runs[0] if runs else None

    # -- writing ---------------------------------------------------------------------------

    def log_session(self, record: dict[str, Any]) -> str:
        """Log a whole session record as one run; idempotent by session id."""
        from mlflow.entities import Metric, Param, RunTag

        record = redact(record)  # also a record spooled by an older llmops
        existing = self.find_run(record["session_id"])
        if existing is not None:
            if existing.data.tags.get(COMPLETE_TAG) == "true":
                return str(existing.info.run_id)
            self.client.delete_run(existing.info.run_id)  # a half-written run from a crash
        git = record.get("git", {})
        name = run_name(git, record["session_id"])
        tags = {SESSION_TAG: record["session_id"], "llmops.version": record.get("llmops_version", "")}
        tags.update({f"git.{k}": str(v) for k, v in git.items()})
        if git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        run = self.client.create_run(self.experiment_id(), start_time=record["started"], tags=tags, run_name=name)
        run_id = run.info.run_id
        results = record["results"]
        ts = record.get("finished") or int(1000 * time.time())

        params: dict[str, str] = {f"settings.{k}": str(v) for k, v in record.get("settings", {}).items()}
        params["llmops_version"] = str(record.get("llmops_version"))
        params.update({f"git.{k}": str(v) for k, v in git.items()})
        models = sorted({r["model"] for r in results})
        params["models"] = ", ".join(models)[:500]
        params.update(model_params(results))
        versions = self.register_prompts(results, git.get("commit"))
        for prompt, (ver, number) in versions.items():
            params[f"prompt.{_key(prompt)}.version"] = ver
            params[f"prompt.{_key(prompt)}.registry_version"] = str(number)

        metrics = []
        taken: set[str] = set()
        for r in results:
            prefix = metric_prefix(r, taken)
            comparison = r.get("comparison") or {}
            values = {
                "rate": r["rate"],  # on the requirement's scale: violations for at_most
                "ci_low": r["interval"][0],
                "ci_high": r["interval"][1],
                "bound": r["bound"],
                "k": r["k"],
                "n": r["n"],
                "calls": r["calls"],
                "reused": r.get("reused"),
                "retries": r.get("retries"),
                "baseline_calls": r.get("baseline_calls"),
                "model_errors": r.get("model_errors"),
                "check_errors": r.get("check_errors"),
                "fixed_n": r["fixed_n"],
                "passed": 1.0 if r["verdict"] == "PASS" else 0.0,
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "cost_usd": r.get("cost_usd"),
                "latency_p50": r["latency_p50"],
                "latency_p95": r["latency_p95"],
                "baseline_difference": comparison.get("difference"),
                "baseline_pairs": comparison.get("pairs"),
                "regressed": (1.0 if comparison.get("verdict") == "regressed" else 0.0) if comparison else None,
            }
            judge = r.get("judge") or {}  # the judge's calls, apart from the model under test's
            if judge:
                for k in ("calls", "replayed", "input_tokens", "output_tokens", "cost_usd", "agreement"):
                    values[f"judge_{k}"] = judge.get(k)
                values["judge_low_agreement"] = 1.0 if JudgeStats.from_dict(judge).low else 0.0
            metrics += [
                Metric(f"{prefix}/{k}", float(v), ts, 0)
                for k, v in values.items()
                if v is not None and v == v  # NaN: too little data, not logged
            ]
            params[f"{prefix}/requirement"] = f"{r['description']} {r['direction']} {r['threshold']:g}"[:500]
            params[f"{prefix}/tested"] = f"{r['threshold']:g} against tolerance {r['tolerance']:g}"
        param_items = [Param(k[:250], v[:6000]) for k, v in params.items()]
        for i in range(0, len(param_items), 100):
            self.client.log_batch(run_id, params=param_items[i : i + 100])
        for i in range(0, len(metrics), 500):
            self.client.log_batch(run_id, metrics=metrics[i : i + 500])
        counts = {v: sum(r["verdict"] == v for r in results) for v in ("PASS", "FAIL", "ERROR")}
        tags_end = [RunTag(f"llmops.{k.lower()}", str(v)) for k, v in counts.items()]
        outcome = record.get("outcome") or {}
        tags_end.append(RunTag("llmops.regressed", str(outcome.get("regressed", 0))))
        if outcome.get("partial"):
            tags_end.append(RunTag("llmops.partial", str(outcome["partial"])))
        if any(r.get("samples") for r in results):  # what MLflow's UI lists as the run's tables
            tags_end.append(RunTag("mlflow.loggedArtifacts", json.dumps([{"path": SAMPLES_ARTIFACT, "type": "table"}])))
        self.client.log_batch(run_id, tags=tags_end)

        # The sample rows go to their own table, once: results.json keeps the numbers.
        self.client.log_dict(run_id, {**record, "results": [_without_rows(r) for r in results]}, RESULTS_ARTIFACT)
        self._log_samples(run_id, results)
        for candidate in record.get("candidates") or ():
            if candidate.get("version"):
                self.log_candidate(run_id, candidate, git.get("commit"), ts)
        self.client.set_terminated(run_id, "FINISHED", end_time=ts)
        self.client.set_tag(run_id, COMPLETE_TAG, "true")
        return str(run_id)

    def _log_samples(self, run_id: str, results: list[dict[str, Any]]) -> None:
        """The sample table (``log_table``'s format, pandas' "split" orient), written row by row
        to a file and uploaded as is: no DataFrame of every output in memory, no pandas import."""
        import tempfile
        from pathlib import Path

        head = ("test", "prompt", "prompt_version")
        columns: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(SAMPLES_ARTIFACT).name
            with open(path, "w", encoding="utf-8") as f:
                for r in results:
                    for s in r.get("samples") or ():
                        if not columns:
                            columns = [*head, *(k for k in s if k not in head)]
                            f.write('{"columns": ' + json.dumps(columns) + ', "data": [')
                        else:
                            f.write(", ")
                        row = {"test": r["test_id"], "prompt": r["prompt"], "prompt_version": r["prompt_version"], **s}
                        f.write(json.dumps([_cell(row.get(k)) for k in columns]))
                if not columns:
                    return
                f.write("]}")
            self.client.log_artifact(run_id, str(path), str(Path(SAMPLES_ARTIFACT).parent))

    def log_candidate(self, parent_run: str, candidate: dict[str, Any], commit: str | None, ts: int) -> None:
        """An optimizer's candidate: a registry version with the alias ``candidate`` (never a
        production alias), tagged with its parent version and held-out numbers, and a nested run
        under the session's run with the search's trajectory."""
        from mlflow.entities import Metric, RunTag

        result = candidate.get("result") or {}
        parts = (result.get("candidate") or {}).get("parts") or []
        name, version = candidate["prompt"], candidate["version"]
        recovery = (result.get("recovery") or {}).get("value")
        tags = {VERSION_TAG: version, PARENT_TAG: str(candidate.get("incumbent_version", ""))}
        if recovery is not None:
            tags[RECOVERY_TAG] = f"{recovery:.4f}"
        for t in result.get("test_scores") or ():
            tags[f"{TEST_TAG}{_key(t['requirement'])[:200]}"] = f"{t['rate']:.4f} ({t['verdict']}) {t['requirement']}"
        if commit:
            tags["git_commit"] = commit
        number = self._find_version(name, version)
        if number is None:
            number = int(
                self.client.register_prompt(
                    name, to_mlflow_template(parts), commit_message=f"llmops candidate {version}", tags=tags
                ).version
            )
        self.client.set_prompt_alias(name, CANDIDATE, number)
        run = self.client.create_run(
            self.experiment_id(),
            start_time=ts,
            run_name=f"optimize {name}",
            tags={"mlflow.parentRunId": parent_run, "llmops.candidate": f"prompts:/{name}/{number}"},
        )
        rows = result.get("trajectory") or []
        metrics = []
        for step, row in enumerate(rows):
            for key in ("train", "validation", "calls", "total_calls"):
                v = row.get(key)
                if isinstance(v, dict):
                    v = v.get("joint")
                if isinstance(v, (int, float)) and v == v:
                    metrics.append(Metric(key, float(v), ts, step))
        if recovery is not None:
            metrics.append(Metric("recovery", float(recovery), ts, 0))
        for i in range(0, len(metrics), 500):
            self.client.log_batch(run.info.run_id, metrics=metrics[i : i + 500])
        if rows:
            columns = {
                k: [json.dumps(r.get(k)) if isinstance(r.get(k), (dict, list)) else r.get(k) for r in rows]
                for k in rows[0]
            }
            self.client.log_table(run.info.run_id, data=columns, artifact_file="llmops/trajectory.json")
        self.client.log_batch(
            run.info.run_id, tags=[RunTag("llmops.stopped_because", str(candidate.get("stopped_because")))]
        )
        self.client.set_terminated(run.info.run_id, "FINISHED", end_time=ts)

    def register_prompts(self, results: list[dict[str, Any]], commit: str | None) -> dict[str, tuple[str, int]]:
        """Register each prompt version once (same text, same registry version)."""
        out: dict[str, tuple[str, int]] = {}
        for r in results:
            name, version = r["prompt"], r["prompt_version"]
            if name in out and out[name][0] == version:
                continue
            found = self._find_version(name, version)
            if found is None:
                tags = {VERSION_TAG: version}
                if commit:
                    tags["git_commit"] = commit
                found = self.client.register_prompt(
                    name, to_mlflow_template(r["template"]), commit_message=f"llmops {version}", tags=tags
                ).version
            out[name] = (version, int(found))
        return out

    def _find_version(self, name: str, version: str) -> int | None:
        try:
            page = self.client.search_prompt_versions(name, max_results=1000)
        except Exception:
            return None
        for pv in getattr(page, "prompt_versions", page) or []:
            if (pv.tags or {}).get(VERSION_TAG) == version:
                return int(pv.version)
        return None

    # -- reading, aliases ------------------------------------------------------------------

    def load_record(self, run_id: str) -> dict[str, Any]:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, RESULTS_ARTIFACT, tmp)
            with open(path, encoding="utf-8") as f:
                return dict(json.load(f))

    def resolve_alias(self, alias: str) -> str | None:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return None
        return exp.tags.get(ALIAS_TAG + alias)

    def promote(self, run_id: str, alias: str, *, force: bool = False) -> list[str]:
        """Make a run the baseline ``alias``: the experiment's tag and its prompts' registry aliases.

        The two move together, so ``--llmops-baseline=ALIAS`` and ``Prompt.load("NAME@ALIAS")``
        agree: the registry aliases first, then the experiment tag; if either fails the
        aliases are put back.  Refused (unless ``force``) for a session that failed, errored,
        regressed or was partial, and for a prompt whose alias another experiment set (the
        registry is shared by all experiments, the tag is not).  Returns lines to print.
        """
        self.get_run(run_id)
        record = self.load_record(run_id)
        issues = problems(record)
        refusals = [f"run {run_id} is no clean baseline: {'; '.join(issues)}"] if issues else []
        results = record["results"]
        names = list(dict.fromkeys(r["prompt"] for r in results))
        owners = {name: self._alias_owner(name, alias) for name in names}
        refusals += [r for name in names if (r := self._foreign_alias(name, alias, owners[name]))]
        if refusals and not force:
            raise TrackingError("; ".join(refusals) + "; pass --force to promote anyway")
        lines = [f"warning: promoting anyway (--force): {r}" for r in refusals]

        versions = self.register_prompts(results, record.get("git", {}).get("commit"))
        before = {name: self._alias_version(name, alias) for name in versions}
        try:
            for prompt, (_, number) in versions.items():
                self.client.set_prompt_alias(prompt, alias, number)
                self.client.set_prompt_tag(prompt, ALIAS_TAG + alias, f"{run_id} {self.experiment}")
            self.client.set_experiment_tag(self.existing_experiment_id(), ALIAS_TAG + alias, run_id)
        except Exception as e:
            self._restore_aliases(alias, before, owners)
            raise TrackingError(
                f"promoting run {run_id} as @{alias} failed ({_first_line(e)}); the previous baseline is kept, "
                "try again"
            ) from None
        lines += [f"prompts:/{prompt}/{number} -> @{alias}" for prompt, (_, number) in versions.items()]
        return lines

    def promote_candidate(self, name: str, alias: str = "baseline", *, force: bool = False) -> list[str]:
        """Accept the optimizer's candidate: move ``prompts:/NAME@ALIAS`` to the version aliased
        ``candidate``.  Returns lines to print: the move and the candidate's numbers (its tags).

        Only the registry alias moves, and only by this explicit call (the optimizer never
        does it): the experiment's baseline run, which ``--llmops-baseline=ALIAS`` compares
        against, stays the last promoted session until a session that runs the candidate's
        text is promoted.  Never creates a store, prompt, version or run.  Refused for an
        unknown prompt or no candidate, for ``--alias candidate``, and (unless ``force``) for
        an alias another experiment set or a candidate that misses a requirement on its
        held-out test cases.
        """
        if alias == CANDIDATE:
            raise TrackingError(
                f"--alias {CANDIDATE} would move the candidate alias onto itself; give the alias to accept the "
                "candidate as, e.g. --alias baseline"
            )
        if self.client.get_prompt(name) is None:
            there = ", ".join(sorted(p.name for p in self.client.search_prompts(max_results=20)))
            raise TrackingError(
                f"prompt '{name}' is not in the prompt registry at {self.uri} (there: {there[:200] or 'none'}); "
                "check --prompt, or point --tracking-uri (or MLFLOW_TRACKING_URI) at the store your sessions log to"
            )
        number = self._alias_version(name, CANDIDATE)
        if number is None:
            raise TrackingError(
                f"prompt '{name}' has no version with the alias @{CANDIDATE} at {self.uri}: the optimizer has not "
                f"proposed one; run its test with --llmops-optimize=on-regression (or on-fail) and tracking on"
            )
        pv = self.client.get_prompt_version(name, str(number))
        tags = dict(pv.tags or {})
        held_out = [_held_out(k.removeprefix(TEST_TAG), v) for k, v in sorted(tags.items()) if k.startswith(TEST_TAG)]
        refusals = [
            f"the candidate misses '{req}' on its held-out test cases ({rate})"
            for req, rate, verdict in held_out
            if verdict == "misses"
        ]
        foreign = self._foreign_alias(name, alias, self._alias_owner(name, alias))
        refusals += [foreign] if foreign else []
        if refusals and not force:
            raise TrackingError("; ".join(refusals) + "; pass --force to accept it anyway")
        lines = [f"warning: accepting anyway (--force): {r}" for r in refusals]
        before = self._alias_version(name, alias)
        parent = tags.get(PARENT_TAG, "")
        parent_number = self._find_version(name, parent) if parent else None
        about = [
            f"  candidate {name}@{tags.get(VERSION_TAG, '?')}, proposed for {name}@{parent or '?'}"
            + (f" (prompts:/{name}/{parent_number})" if parent_number is not None else "")
        ]
        if RECOVERY_TAG in tags:
            recovery = float(tags[RECOVERY_TAG])
            about.append(f"  held-out recovery {'n/a' if recovery != recovery else f'{100 * recovery:.0f}%'}")
        about += [f"  held out: {req}: {rate} ({verdict})" for req, rate, verdict in held_out]
        if not held_out:
            about.append("  no held-out numbers: this version was not proposed by the llmops optimizer")
        run = self.resolve_alias(alias)
        keep = (
            f"  --llmops-baseline={alias} still compares against run {run} of experiment '{self.experiment}': commit "
            f"the candidate's text and promote the session that runs it (`pytest --llmops-promote={alias}` on main)"
            if run
            else f"  experiment '{self.experiment}' has no baseline run @{alias} yet (`llmops promote RUN_ID` sets one)"
        )
        if before == number:
            return [
                *lines,
                f"prompts:/{name}@{alias} is already version {number}, the candidate; nothing moved",
                *about,
            ]
        self.client.set_prompt_alias(name, alias, number)
        was = f"was version {before}" if before is not None else "a new alias"
        return [*lines, f"prompts:/{name}/{number} (@{CANDIDATE}) -> @{alias} ({was})", *about, keep]

    def _alias_version(self, name: str, alias: str) -> int | None:
        try:
            return int(self.client.get_prompt_version_by_alias(name, alias).version)
        except Exception:  # no such alias (or prompt) yet
            return None

    def _foreign_alias(self, name: str, alias: str, owner: tuple[str, str]) -> str:
        """Why ``name@alias`` is not this experiment's to move ("" when it is)."""
        owner_run, owner_exp = owner
        if not owner_exp or owner_exp == self.experiment:
            return ""
        return (
            f"prompts:/{name}@{alias} is the baseline of experiment '{owner_exp}' (run {owner_run}), and registry "
            f"aliases are shared by all experiments; pass --experiment '{owner_exp}' if that is yours, or use "
            f"another --alias for '{self.experiment}'"
        )

    def _alias_owner(self, name: str, alias: str) -> tuple[str, str]:
        """(run id, experiment) that last set ``name@alias`` through llmops; empty when none did."""
        try:
            prompt = self.client.get_prompt(name)
        except Exception:
            return "", ""
        run, _, experiment = ((prompt.tags or {}).get(ALIAS_TAG + alias, "") if prompt else "").partition(" ")
        return run, experiment

    def _restore_aliases(self, alias: str, before: dict[str, int | None], owners: dict[str, tuple[str, str]]) -> None:
        for name, number in before.items():
            try:
                if number is None:
                    self.client.delete_prompt_alias(name, alias)
                else:
                    self.client.set_prompt_alias(name, alias, number)
                run, experiment = owners.get(name, ("", ""))
                if run:
                    self.client.set_prompt_tag(name, ALIAS_TAG + alias, f"{run} {experiment}")
            except Exception:  # best effort: the server that just failed may still be failing
                pass

    def runs(self, max_results: int = 200) -> list[Any]:
        return list(
            self.client.search_runs(
                [self.existing_experiment_id()],
                filter_string=f"tags.`{COMPLETE_TAG}` = 'true'",
                max_results=max_results,
                order_by=["attributes.start_time ASC"],
            )
        )


def model_params(results: list[dict[str, Any]]) -> dict[str, str]:
    """``model.<id>.<setting>`` for each model's identifying settings (base URL, temperature, ...).

    From ``Result.model_settings`` (``llmops.models.model_identity``: no secrets); a setting
    that differs between results of one model id lists its values.
    """
    values: dict[str, dict[str, list[str]]] = {}
    for r in results:
        settings = dict(r.get("model_settings") or {})
        model = str(settings.pop("id", None) or r.get("model", ""))
        for k, v in settings.items():
            seen = values.setdefault(model, {}).setdefault(k, [])
            if str(v) not in seen:
                seen.append(str(v))
    return {_key(f"model.{m}.{k}"): ", ".join(vs)[:6000] for m, ks in values.items() for k, vs in ks.items()}


def _held_out(key: str, value: str) -> tuple[str, str, str]:
    """A candidate's held-out tag, "0.8167 (meets) <requirement>", as (requirement, "82%", "meets")."""
    m = re.fullmatch(r"([0-9.]+|nan) \((\w+)\)(?: (.*))?", value, re.S)
    if m is None:
        return key, value, ""
    rate = "n/a" if m.group(1) == "nan" else f"{100 * float(m.group(1)):.0f}%"
    return m.group(3) or key, rate, m.group(2)


def _cell(value: Any) -> Any:
    """A table cell: nested values as JSON text, as MLflow's tables show them."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _without_rows(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "samples"}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
