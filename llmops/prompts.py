"""Prompt: a named template whose variables are known up front and whose version is a hash."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

from llmops.errors import PromptError

Message = tuple[str, str]  # (role, content); role is "system", "human" or "ai"


def _fields(template: str, prompt: str) -> list[str]:
    names: list[str] = []
    fix = "use {name} for variables and {{ }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:  # an unclosed or a lone brace
        raise PromptError(f"prompt {prompt!r}: malformed template ({e}); {fix}") from None
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if field == "" or not field.isidentifier():
            raise PromptError(f"prompt {prompt!r}: template field {{{field}}} is not a plain variable name; {fix}")
        if field not in names:
            names.append(field)
    return names


class Prompt:
    """A named prompt template.

    ``template`` is a string with ``{variable}`` fields (``{{``/``}}`` for literal braces)
    or a LangChain ``ChatPromptTemplate``; ``system`` optionally adds a system message to a
    string template.  ``version`` is a content hash: the same text always has the same
    version, and any change to the text gives a new one.
    """

    def __init__(self, name: str, template: Any, *, system: str | None = None) -> None:
        if not name or not isinstance(name, str):
            raise PromptError(f"a Prompt needs a non-empty name, got {name!r}")
        self.name = name
        self.template = template
        self.system = system
        if isinstance(template, str):
            self._parts: list[Message] = ([("system", system)] if system else []) + [("human", template)]
            variables: list[str] = []
            for _, text in self._parts:
                variables += [v for v in _fields(text, name) if v not in variables]
            self.variables = tuple(variables)
        elif hasattr(template, "format_messages") and hasattr(template, "input_variables"):
            if system is not None:
                raise PromptError(f"prompt {name!r}: put the system message inside the ChatPromptTemplate")
            self._parts = _langchain_parts(template)
            self.variables = tuple(template.input_variables)
        else:
            raise PromptError(
                f"prompt {name!r}: template must be a str or a LangChain ChatPromptTemplate, "
                f"got {type(template).__name__}"
            )
        canonical = json.dumps({"messages": self._parts}, sort_keys=True, ensure_ascii=False)
        self.version = hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def parts(self) -> list[Message]:
        """The (role, template) messages before variables are filled in."""
        return list(self._parts)

    @property
    def text(self) -> str:
        """The template text as a person reads it (roles in brackets when there are several)."""
        if len(self._parts) == 1:
            return self._parts[0][1]
        return "\n\n".join(f"[{role}]\n{text}" for role, text in self._parts)

    def check_inputs(self, inputs: Mapping[str, Any], case_id: str) -> None:
        missing = [v for v in self.variables if v not in inputs]
        if missing:
            raise PromptError(
                f"prompt {self.name!r} needs variable {missing[0]!r}, which case {case_id!r} does "
                f"not supply; add {missing[0]!r} to the case inputs (it has: {', '.join(sorted(inputs)) or 'none'})"
            )
        unknown = [k for k in inputs if k not in self.variables]
        if unknown:
            raise PromptError(
                f"case {case_id!r} supplies {unknown[0]!r}, which prompt {self.name!r} does not use "
                f"(its variables: {', '.join(self.variables) or 'none'}); remove it or add "
                f"{{{unknown[0]}}} to the template"
            )

    def render(self, inputs: Mapping[str, Any]) -> list[Message]:
        if isinstance(self.template, str):
            return [(role, text.format(**inputs)) for role, text in self._parts]
        return [(m.type, content_text(m.content)) for m in self.template.format_messages(**inputs)]

    @classmethod
    def from_parts(cls, name: str, parts: list[Message]) -> Prompt:
        """A prompt from (role, template) messages, as kept in results and the registry."""
        roles = [role for role, _ in parts]
        if roles == ["human"]:
            return cls(name, parts[0][1])
        if roles == ["system", "human"]:
            return cls(name, parts[1][1], system=parts[0][1])
        from langchain_core.prompts import ChatPromptTemplate

        return cls(name, ChatPromptTemplate.from_messages(parts))

    @classmethod
    def load(cls, uri: str, *, tracking_uri: str | None = None) -> Prompt:
        """A prompt from the MLflow Prompt Registry: ``prompts:/name@alias`` or ``prompts:/name/3``."""
        import re

        from llmops.tracking.mlflow_store import MlflowStore, from_mlflow_template
        from llmops.tracking.mlflow_store import tracking_uri as resolve

        m = re.fullmatch(r"prompts:/([^/@]+)(?:@([\w.-]+)|/(\d+))", uri)
        if not m:
            raise PromptError(f"prompt URI {uri!r}: use prompts:/NAME@ALIAS or prompts:/NAME/VERSION")
        name, alias, number = m.groups()
        store = MlflowStore(resolve(tracking_uri))
        store.check_reachable()
        try:
            pv = (
                store.client.get_prompt_version_by_alias(name, alias)
                if alias
                else store.client.get_prompt_version(name, number)
            )
        except Exception as e:
            pv, why = None, str(e).splitlines()[0]
        else:
            why = "not found"
        if pv is None:
            raise PromptError(
                f"prompt {uri} is not in the registry at {store.uri} ({why}); register it by running its tests with tracking on"
            )
        return cls.from_parts(name, from_mlflow_template(pv.template))

    def __repr__(self) -> str:
        return f"Prompt({self.name!r}, version={self.version!r}, variables={list(self.variables)!r})"


def content_text(content: Any) -> str:
    """LangChain message content (a string or a list of blocks) as plain text."""
    if isinstance(content, str):
        return content
    parts = [c if isinstance(c, str) else str(c.get("text", "")) for c in content]
    return "".join(parts)


def _langchain_parts(template: Any) -> list[Message]:
    parts: list[Message] = []
    for m in template.messages:
        inner = getattr(m, "prompt", None)
        if inner is not None and hasattr(inner, "template"):
            role = {"SystemMessagePromptTemplate": "system", "AIMessagePromptTemplate": "ai"}.get(
                type(m).__name__, "human"
            )
            parts.append((role, str(inner.template)))
        elif hasattr(m, "content"):
            parts.append((str(m.type), content_text(m.content)))
        else:
            parts.append((type(m).__name__, repr(m)))
    return parts


def as_text(messages: list[Message]) -> str:
    """Messages joined as one plain string, for models that take text (callables)."""
    return "\n\n".join(text for _, text in messages)
