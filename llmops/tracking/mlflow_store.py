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

from llmops.errors import LlmopsError

RESULTS_ARTIFACT = "llmops/results.json"
SAMPLES_ARTIFACT = "llmops/samples.json"
SESSION_TAG = "llmops.session_id"
COMPLETE_TAG = "llmops.complete"
ALIAS_TAG = "llmops.alias."  # experiment tag: llmops.alias.<alias> = run id
VERSION_TAG = "llmops.version"  # prompt-version tag: our content hash
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}
_BACK = {v: k for k, v in _ROLES.items()}


class TrackingUnavailable(LlmopsError):
    pass


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


class MlflowStore:
    def __init__(self, uri: str, experiment: str = "llmops") -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def check_reachable(self, timeout: float = 3.0) -> None:
        """Raise TrackingUnavailable quickly if an http(s) tracking server does not answer."""
        if not self.uri.startswith(("http://", "https://")):
            return
        try:
            urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=timeout).read()
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise TrackingUnavailable(
                f"MLflow tracking server {self.uri} is unreachable ({e}); results were kept in the "
                "local spool: run `llmops sync` when it is back"
            ) from None

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        return exp.experiment_id if exp else self.client.create_experiment(self.experiment)

    def find_run(self, session_id: str) -> Any | None:
        runs = self.client.search_runs([self.experiment_id()], filter_string=f"tags.`{SESSION_TAG}` = '{session_id}'")
        return runs[0] if runs else None

    # -- writing ---------------------------------------------------------------------------

    def log_session(self, record: dict[str, Any]) -> str:
        """Log a whole session record as one run; idempotent by session id."""
        from mlflow.entities import Metric, Param, RunTag

        existing = self.find_run(record["session_id"])
        if existing is not None:
            if existing.data.tags.get(COMPLETE_TAG) == "true":
                return str(existing.info.run_id)
            self.client.delete_run(existing.info.run_id)  # a half-written run from a crash
        git = record.get("git", {})
        name = (
            "pytest"
            + (f" {git['branch']}" if git.get("branch") else "")
            + (f" {git['commit'][:7]}" if git.get("commit") else "")
        )
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
        self.client.log_batch(run_id, tags=[RunTag(f"llmops.{k.lower()}", str(v)) for k, v in counts.items()])

        self.client.log_dict(run_id, record, RESULTS_ARTIFACT)
        rows = [
            {"test": r["test_id"], "prompt": r["prompt"], "prompt_version": r["prompt_version"], **s}
            for r in results
            for s in r.get("samples", [])
        ]
        if rows:
            columns = {
                k: [json.dumps(row.get(k)) if isinstance(row.get(k), (dict, list)) else row.get(k) for row in rows]
                for k in rows[0]
            }
            self.client.log_table(run_id, data=columns, artifact_file=SAMPLES_ARTIFACT)
        self.client.set_terminated(run_id, "FINISHED", end_time=ts)
        self.client.set_tag(run_id, COMPLETE_TAG, "true")
        return str(run_id)

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

    def promote(self, run_id: str, alias: str) -> list[str]:
        """Mark a run as the baseline ``alias`` and alias its prompt versions in the registry."""
        record = self.load_record(run_id)
        self.client.set_experiment_tag(self.experiment_id(), ALIAS_TAG + alias, run_id)
        done = []
        for prompt, (_, number) in self.register_prompts(
            record["results"], record.get("git", {}).get("commit")
        ).items():
            self.client.set_prompt_alias(prompt, alias, number)
            done.append(f"prompts:/{prompt}/{number} -> @{alias}")
        return done

    def runs(self, max_results: int = 200) -> list[Any]:
        return list(
            self.client.search_runs(
                [self.experiment_id()],
                filter_string=f"tags.`{COMPLETE_TAG}` = 'true'",
                max_results=max_results,
                order_by=["attributes.start_time ASC"],
            )
        )
