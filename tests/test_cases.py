import json

import pytest

from llmops import Case, load_cases
from llmops.errors import CaseFileError


def test_jsonl_structured_and_flat(tmp_path):
    f = tmp_path / "cases.jsonl"
    f.write_text(
        json.dumps({"inputs": {"q": "a"}, "expected": "x", "id": "one", "tags": ["t"]})
        + "\n\n"
        + json.dumps({"q": "b", "expected": "y"})
        + "\n"
    )
    cases = load_cases(f)
    assert cases[0] == Case({"q": "a"}, "x", "one", ("t",))
    assert cases[1].inputs == {"q": "b"} and cases[1].expected == "y" and cases[1].id == "cases.jsonl:3"


def test_jsonl_error_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"q": "a"}\n{"q": \n')
    with pytest.raises(CaseFileError, match=r"bad.jsonl:2: invalid JSON"):
        load_cases(f)


def test_csv_with_tags_and_line_errors(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("id,question,expected,tags\nq1,What?,42,math;easy\n")
    (c,) = load_cases(f)
    assert c.id == "q1" and c.inputs == {"question": "What?"} and c.expected == "42" and c.tags == ("math", "easy")
    bad = tmp_path / "bad.csv"
    bad.write_text("question,expected\nok,1\ntoo,many,fields\n")
    with pytest.raises(CaseFileError, match=r"bad.csv:3"):
        load_cases(bad)


def test_yaml_with_line_numbers(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("- inputs: {q: a}\n  expected: x\n- q: b\n- 3\n")
    with pytest.raises(CaseFileError, match=r"c.yaml:4: a case must be a mapping"):
        load_cases(f)
    f.write_text("- inputs: {q: a}\n  expected: x\n- q: b\n")
    assert [c.id for c in load_cases(f)] == ["c.yaml:1", "c.yaml:3"]
    f.write_text("- q: [unclosed\n")
    with pytest.raises(CaseFileError, match=r"c.yaml:\d+: invalid YAML"):
        load_cases(f)


def test_unknown_format_duplicate_ids_and_missing_file(tmp_path):
    with pytest.raises(CaseFileError, match=r"unknown format '\.txt'"):
        (tmp_path / "c.txt").write_text("x")
        load_cases(tmp_path / "c.txt")
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": "a", "q": 1}\n{"id": "a", "q": 2}\n')
    with pytest.raises(CaseFileError, match="'a' appears twice"):
        load_cases(f)
    with pytest.raises(CaseFileError, match="does not exist"):
        load_cases(tmp_path / "nope.jsonl")


def test_case_id_defaults_to_a_stable_hash():
    assert Case({"a": 1}).id == Case({"a": 1}).id != Case({"a": 2}).id
