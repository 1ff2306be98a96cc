"""Precision and recall of the safety detectors on a labelled set written for llmops.

``benchmarks/detector_benchmark.jsonl`` holds 281 hand-written texts, each labelled:

- ``pii``: the kinds of personal data in the text (empty for the hard negatives: order
  ids, dates, versions, ISBNs, phone-shaped references, Luhn-valid order ids, invalid
  IBANs, MAC addresses, UUIDs, hashes, section numbers shaped like IP addresses ...);
- ``leak``: whether the secret ``sk-live-7Hq2Zp9Lw4Xc`` is in the text, and under which
  transformation (negatives: prefixes, one-character-off keys, other base64, masked keys);
- ``refusal``: whether the text is a refusal (English and nine other languages; negatives
  are idioms and apologies that are not refusals);
- ``toxicity``: whether the text is offensive (needs ``llmops[toxicity]``; skipped without);
- ``injection``: whether a model's output obeyed an injection payload (negatives include
  outputs that quote the payload).

A text counts as a true positive for a detector when the detector fires and the label
says it should.  For ``pii`` the table also breaks precision and recall down by kind
(a finding of a kind the text is not labelled with is a false positive of that kind).
With Presidio installed (``llmops[presidio]``), its backend is measured too, over a blank
spaCy pipeline (the pattern recognisers; no names or places, since no spaCy model can be
downloaded here).

    .venv/bin/python benchmarks/detectors.py

Writes the table to benchmarks/results/detectors.md as well.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from llmops import Case, checks
from llmops.checks.safety import PII_KINDS, find_pii, find_secret
from llmops.errors import MissingDependency

ROOT = Path(__file__).parent
DATA = ROOT / "detector_benchmark.jsonl"
OUT = ROOT / "results" / "detectors.md"
SECRET = "sk-live-7Hq2Zp9Lw4Xc"


def rates(tp: int, fp: int, fn: int) -> tuple[str, str]:
    p = f"{tp / (tp + fp):.3f}" if tp + fp else "n/a"
    r = f"{tp / (tp + fn):.3f}" if tp + fn else "n/a"
    return p, r


class Tally:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0
        self.errors: list[str] = []

    def add(self, predicted: bool, label: bool, text: str) -> None:
        if predicted and label:
            self.tp += 1
        elif predicted:
            self.fp += 1
            self.errors.append(f"false positive: {text[:80]!r}")
        elif label:
            self.fn += 1
            self.errors.append(f"missed: {text[:80]!r}")
        else:
            self.tn += 1

    def row(self, name: str) -> str:
        p, r = rates(self.tp, self.fp, self.fn)
        n = self.tp + self.fp + self.fn + self.tn
        return f"| {name} | {n} | {self.tp + self.fn} | {self.tp} | {self.fp} | {self.fn} | {p} | {r} |"


def pii_tallies(records: list[dict], kinds_of) -> tuple[Tally, dict[str, Tally]]:  # type: ignore[no-untyped-def]
    overall = Tally()
    by_kind: dict[str, Tally] = defaultdict(Tally)
    for r in records:
        label = {"ipv4" if k == "ip" else k for k in r["label"]}
        found = kinds_of(r["text"])
        overall.add(bool(found), bool(label), r["text"])
        for k in PII_KINDS:
            by_kind[k].add(k in found, k in label, r["text"])
    return overall, by_kind


def presidio_kinds():  # type: ignore[no-untyped-def]
    """pii(backend='presidio') over a blank spaCy pipeline, or None when Presidio is absent."""
    try:
        import spacy

        path = Path(tempfile.mkdtemp()) / "blank_en"
        spacy.blank("en").to_disk(path)
        c = checks.pii(backend="presidio", presidio_model=str(path))
    except (ImportError, MissingDependency):
        return None
    from llmops.checks.safety import _presidio_engine

    engine = _presidio_engine(str(path), "en")
    ip = {"IP_ADDRESS": None}

    def kinds(text: str) -> set[str]:
        out = set()
        for res in engine.analyze(text, language="en", score_threshold=c.params["score_threshold"]):
            kind = {
                "EMAIL_ADDRESS": "email",
                "PHONE_NUMBER": "phone",
                "CREDIT_CARD": "card",
                "IBAN_CODE": "iban",
                "US_SSN": "ssn",
            }.get(res.entity_type)
            if res.entity_type in ip:
                kind = "ipv6" if ":" in text[res.start : res.end] else "ipv4"
            if kind:
                out.add(kind)
        return out

    return kinds


def table(records: list[dict], kinds, case: Case) -> tuple[list[str], dict[str, list[str]], dict]:  # type: ignore[no-untyped-def]
    """The table rows for some records, their errors by detector, and leak recall by transformation."""
    by = defaultdict(list)
    for r in records:
        by[r["detector"]].append(r)
    rows: list[str] = []
    misses: dict[str, list[str]] = {}
    overall, by_kind = pii_tallies(by["pii"], lambda t: {f.kind for f in find_pii(t)})
    rows.append(overall.row("pii (regex), any kind"))
    rows += [by_kind[k].row(f"&nbsp;&nbsp;pii: {k}") for k in PII_KINDS]
    misses["pii (regex)"] = overall.errors + [
        e + f" [{k}]" for k in PII_KINDS for e in by_kind[k].errors if "positive" in e
    ]
    if kinds is not None:
        p_overall, p_kind = pii_tallies(by["pii"], kinds)
        rows.append(p_overall.row("pii (presidio, blank spaCy pipeline), any kind"))
        rows += [p_kind[k].row(f"&nbsp;&nbsp;presidio: {k}") for k in PII_KINDS]
        misses["pii (presidio)"] = p_overall.errors
    else:
        rows.append("| pii (presidio) | not installed (`pip install 'llmops[presidio]'`) | | | | | | |")

    leak = Tally()
    per_t: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in by["leak"]:
        m = find_secret(r["text"], SECRET)
        leak.add(m is not None, r["label"], r["text"])
        if r["label"]:
            per_t[r["transformation"]][1] += 1
            per_t[r["transformation"]][0] += m is not None
    rows.append(leak.row("no_leak (known secret)"))
    misses["no_leak"] = leak.errors

    refusal = Tally()
    c = checks.refusal()
    for r in by["refusal"]:
        refusal.add(c(r["text"], case).status == "pass", r["label"], r["text"])
    rows.append(refusal.row("refusal"))
    misses["refusal"] = refusal.errors

    try:
        tox_check = checks.toxicity()
    except MissingDependency as e:
        rows.append(f"| toxicity | skipped: {e} | | | | | | |")
    else:
        tox = Tally()
        for r in by["toxicity"]:
            tox.add(tox_check(r["text"], case).status == "pass", r["label"], r["text"])
        rows.append(tox.row("toxicity (alt-profanity-check, p >= 0.5)"))
        misses["toxicity"] = tox.errors

    inj = Tally()
    ic = checks.injection_succeeded()
    for r in by["injection"]:
        inj.add(ic(r["text"], Case(r["inputs"] or {"q": ""})).status == "pass", r["label"], r["text"])
    rows.append(inj.row("injection_succeeded"))
    misses["injection_succeeded"] = inj.errors
    return rows, misses, per_t


HEADER = ["| detector | texts | positives | TP | FP | FN | precision | recall |", "|---|---|---|---|---|---|---|---|"]


def main() -> None:
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    dev = [r for r in records if r["split"] == "dev"]
    held = [r for r in records if r["split"] == "heldout"]
    case = Case({"q": ""})
    kinds = presidio_kinds()
    dev_rows, dev_miss, dev_t = table(dev, kinds, case)
    held_rows, held_miss, held_t = table(held, kinds, case)
    lines = [
        "# Safety detectors: precision and recall",
        "",
        f"`.venv/bin/python benchmarks/detectors.py` over `benchmarks/detector_benchmark.jsonl`: {len(records)} "
        "hand-written, labelled texts (see the script's docstring). Positives: texts labelled with the thing; "
        "TP/FP/FN: true positives, false positives, misses.",
        "",
        f"## Development set ({len(dev)} texts)",
        "",
        "The detectors were tuned while these texts were written, so these are in-sample numbers: they show that "
        "the hard negatives (order ids, dates, versions, phone-shaped references, decoy base64, idioms) stay "
        "negative, not how the detectors do on text nobody tuned them on.",
        "",
        *HEADER,
        *dev_rows,
        "",
        f"## Held-out set ({len(held)} texts)",
        "",
        "Written after the tuning and measured once, with no change to the detectors afterwards: the honest "
        "estimate (small, so wide uncertainty). Presidio's rows (present where `llmops[presidio]` is installed) "
        "were tuned on neither set; they use its pattern recognisers over a blank spaCy pipeline at the check's "
        "default score threshold 0.4.",
        "",
        *HEADER,
        *held_rows,
        "",
        "Leak recall by transformation, both sets (the transformation reported is the simplest that matches):",
        "",
        "| transformation | found / planted |",
        "|---|---|",
    ]
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for per in (dev_t, held_t):
        for t, (found, n) in per.items():
            merged[t][0] += found
            merged[t][1] += n
    lines += [f"| {t} | {found}/{n} |" for t, (found, n) in merged.items()]
    lines += ["", "Every error, for the record (what a user would see go wrong):", ""]
    for split, miss in (("dev", dev_miss), ("held-out", held_miss)):
        for name, errs in miss.items():
            lines += [f"- {split}, {name}: {e}" for e in errs]
    versions = [f"Python {sys.version.split()[0]}"]
    for dist in ("presidio-analyzer", "spacy", "alt-profanity-check", "scikit-learn"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} not installed")
    lines += ["", ", ".join(versions) + "."]
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
