"""The pull-request comment: one per pull request, found by a hidden marker, updated in place.

GitHub's REST API over urllib (no new dependency).  Every push to a pull request updates
the same comment rather than adding one: the comments of the pull request are listed
(all pages), the first one that starts with ``MARKER`` is PATCHed, and only when there is
none is a comment POSTed.  The base URL comes from ``GITHUB_API_URL`` (GitHub Enterprise,
or a fake server on 127.0.0.1 in tests).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError

MARKER = "<!-- llmops-gate -->"
#: GitHub rejects comment bodies longer than 65,536 characters; stay clear of it.
MAX_BODY = 65_536
_BODY_BUDGET = MAX_BODY - 1_536
DEFAULT_API_URL = "https://api.github.com"


class GitHubError(LlmopsError):
    """The comment could not be written; the message says why and what to change."""


@dataclass(frozen=True)
class PullRequest:
    repo: str  # owner/name
    number: int

    @property
    def label(self) -> str:
        return f"{self.repo}#{self.number}"


def pull_request(
    repo: str | None = None, number: int | None = None, env: Mapping[str, str] | None = None
) -> PullRequest:
    """The pull request to comment on: flags first, then the GitHub Actions environment."""
    env = os.environ if env is None else env
    repo = repo or env.get("GITHUB_REPOSITORY")
    if not repo or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise GitHubError(
            f"no repository to comment on (got {repo!r}): pass --repo OWNER/NAME, or run inside GitHub Actions "
            "(GITHUB_REPOSITORY)"
        )
    if number is None:
        number = _number_from_env(env)
    if number is None:
        event = env.get("GITHUB_EVENT_NAME", "")
        where = f"this is a {event!r} event, not a pull request; " if event else ""
        raise GitHubError(
            f"no pull request number: {where}pass --pr N, or run the comment step only on pull_request events"
        )
    return PullRequest(repo, int(number))


def _number_from_env(env: Mapping[str, str]) -> int | None:
    path = env.get("GITHUB_EVENT_PATH")
    if path and Path(path).is_file():
        try:
            event = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            event = {}
        for key in ("pull_request", "issue"):  # issue_comment events on a pull request carry "issue"
            number = (event.get(key) or {}).get("number")
            if isinstance(number, int):
                return number
    if env.get("LLMOPS_PR_NUMBER", "").isdigit():
        return int(env["LLMOPS_PR_NUMBER"])
    m = re.match(r"refs/pull/(\d+)/", env.get("GITHUB_REF", ""))
    return int(m.group(1)) if m else None


def comment_body(markdown: str, details_url: str | None = None) -> str:
    """The marker, then the report; cut at a line when it would pass GitHub's limit."""
    body = f"{MARKER}\n{markdown.rstrip()}\n"
    if _length(body) <= _BODY_BUDGET:
        return body
    where = f" ([workflow run]({details_url}))" if details_url else ""
    note = f"\n\n*The report is cut here: it is longer than a GitHub comment allows. The full report is in the workflow run's artifacts{where}.*\n"
    budget = _BODY_BUDGET - _length(note)
    kept: list[str] = []
    size = 0
    for line in body.splitlines(keepends=True):
        size += _length(line)
        if size > budget:
            break
        kept.append(line)
    text = "".join(kept)
    if text.count("```") % 2:  # do not leave a code block open
        text += "```\n"
    return text + note


def _length(text: str) -> int:
    """Length as GitHub may count it: the larger of code points and UTF-16 units."""
    return max(len(text), len(text.encode("utf-16-le")) // 2)


def run_url(env: Mapping[str, str] | None = None) -> str | None:
    """The current workflow run's page, where the artifacts are."""
    env = os.environ if env is None else env
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


class GitHub:
    """The few REST calls the comment needs."""

    def __init__(self, token: str | None = None, api_url: str | None = None, timeout: float = 30.0) -> None:
        token = token or os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
        if not token:
            raise GitHubError(
                "no GitHub token: set GITHUB_TOKEN (in a workflow: env: GITHUB_TOKEN: ${{ github.token }}) "
                "with permission pull-requests: write"
            )
        self.token = token
        self.api_url = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[Any, Mapping[str, str]]:
        if not url.startswith(("http://", "https://")):
            url = self.api_url + url
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "llmops-gate",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
                return (json.loads(payload) if payload else None), dict(response.headers)
        except urllib.error.HTTPError as e:
            raise GitHubError(_explain(e, method, url)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise GitHubError(
                f"cannot reach the GitHub API at {self.api_url} ({reason}); check GITHUB_API_URL and the network"
            ) from None

    def comments(self, pr: PullRequest) -> Iterator[dict[str, Any]]:
        """Every comment on the pull request, following the Link header page by page."""
        url: str | None = f"{self.api_url}/repos/{pr.repo}/issues/{pr.number}/comments?per_page=100"
        while url:
            page, headers = self._call("GET", url)
            yield from page or []
            url = _next_link(headers.get("Link") or headers.get("link") or "")

    def find(self, pr: PullRequest) -> dict[str, Any] | None:
        """Our comment: the first whose body starts with the marker."""
        for comment in self.comments(pr):
            if str(comment.get("body") or "").lstrip().startswith(MARKER):
                return comment
        return None

    def upsert(self, pr: PullRequest, body: str) -> tuple[str, dict[str, Any]]:
        """Update our comment in place, or create it; returns ("updated" | "created", comment)."""
        if not body.lstrip().startswith(MARKER):
            body = f"{MARKER}\n{body}"
        ours = self.find(pr)
        if ours is not None:
            comment, _ = self._call("PATCH", f"/repos/{pr.repo}/issues/comments/{ours['id']}", {"body": body})
            return "updated", comment
        comment, _ = self._call("POST", f"/repos/{pr.repo}/issues/{pr.number}/comments", {"body": body})
        return "created", comment


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        m = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', part)
        if m:
            return m.group(1)
    return None


def _explain(e: urllib.error.HTTPError, method: str, url: str) -> str:
    try:
        detail = str(json.loads(e.read() or b"{}").get("message", ""))
    except (ValueError, AttributeError):
        detail = ""
    what = f"GitHub answered {e.code} to {method} {url.split('?')[0]}" + (f" ({detail})" if detail else "")
    if e.code == 401:
        return f"{what}: the token was rejected; check GITHUB_TOKEN"
    if e.code == 403 and e.headers.get("X-RateLimit-Remaining") == "0":
        return f"{what}: the token's API rate limit is used up; retry after the reset time"
    if e.code == 403:
        return (
            f"{what}: the token may not write comments; give the job `permissions: pull-requests: write` "
            "(pull requests from forks get a read-only token: the job summary still has the report)"
        )
    if e.code == 404:
        return f"{what}: no such repository or pull request, or the token cannot see it; check --repo and --pr"
    return what


def post_report(
    markdown: str,
    *,
    repo: str | None = None,
    number: int | None = None,
    token: str | None = None,
    api_url: str | None = None,
) -> str:
    """Create or update the pull request's llmops comment; returns a line saying which."""
    pr = pull_request(repo, number)
    client = GitHub(token, api_url)
    action, comment = client.upsert(pr, comment_body(markdown, run_url()))
    where = comment.get("html_url") or f"comment {comment.get('id')}"
    return f"{action} the llmops comment on {pr.label}: {where}"


__all__ = [
    "MARKER",
    "MAX_BODY",
    "GitHub",
    "GitHubError",
    "PullRequest",
    "comment_body",
    "post_report",
    "pull_request",
    "run_url",
]
