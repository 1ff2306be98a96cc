"""A session's sample tables on disk, written as each result is made; results carry a reference.

Each process appends one JSON line per result (``{"ref": ..., "rows": [...]}``) to its own
file in the session's folder, so what travels on pytest's reports (and from pytest-xdist
workers to the controller) is a few hundred bytes per requirement whatever the number of
samples, and no process holds every output while the tests run.  At the session's end the
rows are read back only for what asks for them: the reports, MLflow's sample table, the
failing samples under ``-v``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

REF = "samples_ref"  # the key of a result dict that names its rows in the session's folder


class SampleTables:
    """The sample-table file of one process in the session's folder."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.path = folder / f"{name}.jsonl"
        self.count = 0

    def put(self, rows: list[dict[str, Any]]) -> str:
        """Append one result's rows; returns the reference the result carries instead."""
        self.count += 1
        ref = f"{self.path.stem}:{self.count}"
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"ref": ref, "rows": rows}) + "\n")
        return ref


def attach(results: list[dict[str, Any]], folder: Path) -> None:
    """Put each result's rows back in place of its reference (in place; references are removed)."""
    wanted = {r[REF]: r for r in results if r.get(REF)}
    if wanted and folder.exists():
        for path in sorted(folder.glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    entry = json.loads(line)
                    if entry["ref"] in wanted:
                        wanted[entry["ref"]]["samples"] = entry["rows"]
    detach(results)


def detach(results: list[dict[str, Any]]) -> None:
    """Drop the references (the rows stay on disk until ``remove``)."""
    for r in results:
        r.pop(REF, None)


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
