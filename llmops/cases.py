"""Case: one input to a prompt, with an optional expected answer; loaders for JSONL, CSV, YAML.

A record in any file format is either ``{"inputs": {...}, "expected": ..., "id": ..., "tags": [...]}``
or flat: every key other than ``expected``, ``id`` and ``tags`` is an input.  In CSV, ``tags``
is a ``;``-separated list.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import CaseFileError, ConfigError

_RESERVED = ("expected", "id", "tags")


@dataclass(frozen=True)
class Case:
    inputs: Mapping[str, Any]
    expected: Any = None
    id: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, Mapping):
            raise TypeError(f"Case inputs must be a mapping of variable -> value, got {type(self.inputs).__name__}")
        object.__setattr__(self, "inputs", dict(self.inputs))
        object.__setattr__(self, "tags", tuple(self.tags))
        if not self.id:
            object.__setattr__(self, "id", self.key[:8])

    @property
    def key(self) -> str:
        """The case's content (inputs and expected): what a baseline pairs on, whatever its id or line."""
        text = json.dumps({"inputs": self.inputs, "expected": self.expected}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _record_to_case(record: Any, where: str) -> Case:
    if not isinstance(record, Mapping):
        raise CaseFileError(f"{where}: a case must be a mapping (object), got {type(record).__name__}")
    if "inputs" in record:
        extra = set(record) - {"inputs", *_RESERVED}
        if extra:
            raise CaseFileError(
                f"{where}: unknown key {sorted(extra)[0]!r} beside 'inputs'; allowed: inputs, expected, id, tags"
            )
        inputs = record["inputs"]
        if not isinstance(inputs, Mapping):
            raise CaseFileError(f"{where}: 'inputs' must be a mapping, got {type(inputs).__name__}")
    else:
        inputs = {k: v for k, v in record.items() if k not in _RESERVED}
    tags = record.get("tags") or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split(";") if t.strip())
    case_id = record.get("id")
    return Case(
        inputs=inputs,
        expected=record.get("expected"),
        id=str(case_id) if case_id not in (None, "") else where,
        tags=tags,
    )


def _check_ids(cases: list[Case], path: Path) -> list[Case]:
    seen: dict[str, int] = {}
    for i, c in enumerate(cases):
        if c.id in seen:
            raise CaseFileError(
                f"{path}: case id {c.id!r} appears twice (records {seen[c.id] + 1} and {i + 1}); ids must be unique"
            )
        seen[c.id] = i
    return cases


def load_cases(path: str | Path) -> list[Case]:
    """Cases from a .jsonl, .csv or .yaml/.yml file; errors name the file and line."""
    p = Path(path)
    if not p.exists():
        raise CaseFileError(f"case file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        cases = list(_load_jsonl(p))
    elif suffix == ".csv":
        cases = list(_load_csv(p))
    elif suffix in (".yaml", ".yml"):
        cases = _load_yaml(p)
    else:
        raise CaseFileError(f"case file {p}: unknown format {suffix!r}; use .jsonl, .csv, .yaml or .yml")
    if not cases:
        raise CaseFileError(f"case file {p} holds no cases")
    return _check_ids(cases, p)


def _load_jsonl(p: Path) -> Iterable[Case]:
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{p.name}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CaseFileError(f"{p}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            yield _record_to_case(record, where)


def _load_csv(p: Path) -> Iterable[Case]:
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise CaseFileError(f"{p}: no header row; the first row must name the columns")
        for record in reader:
            lineno = reader.line_num
            if None in record or any(v is None for v in record.values()):
                raise CaseFileError(f"{p}:{lineno}: row has a different number of fields than the header")
            yield _record_to_case(
                {k: v for k, v in record.items() if not (k in _RESERVED and v == "")}, f"{p.name}:{lineno}"
            )


def _load_yaml(p: Path) -> list[Case]:
    import yaml

    text = p.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CaseFileError(f"{p}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, list) or root is None:
        raise CaseFileError(f"{p}: the file must hold a list of cases (a YAML sequence)")
    return [
        _record_to_case(record, f"{p.name}:{node.start_mark.line + 1}")
        for record, node in zip(data, root.value, strict=True)
    ]


def as_cases(cases: Any) -> list[Case]:
    """Normalise what a user passes: a Case, a mapping of inputs, a path, or a list of those."""
    if isinstance(cases, Case):
        return [cases]
    if isinstance(cases, (str, Path)):
        return load_cases(cases)
    if isinstance(cases, Mapping):
        return [Case(inputs=cases)]
    out = [c if isinstance(c, Case) else Case(inputs=c) for c in cases]
    if not out:
        raise ConfigError("no cases given: pass a Case, a list of cases or a case file")
    ids = [c.id for c in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"case id {dupes[0]!r} appears more than once; give each case a unique id")
    return out
