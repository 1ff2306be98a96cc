"""Models: one async protocol, and adapters for what users already have.

- any LangChain chat model or Runnable (``LangChainModel``),
- a ``"provider:model"`` string, resolved through LangChain's ``init_chat_model``,
- ``"local:smollm2"``, the embedded CPU model (``llmops[local]``),
- a plain callable ``str -> str`` (``CallableModel``),
- ``FunctionModel(fn)`` with ``fn(prompt_text, rng)``: seeded simulation for tests whose
  true pass rate must be known.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from llmops.errors import ModelError
from llmops.prompts import Message, as_text, content_text


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        # Lone surrogates (a provider or a client that decoded bytes badly) are not text: no
        # UTF-8 file, sqlite cache or MLflow artifact takes them.  Each becomes U+FFFD.
        if isinstance(self.text, str) and not self.text.isascii():
            try:
                self.text.encode("utf-8")
            except UnicodeEncodeError:
                clean = self.text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                object.__setattr__(self, "text", clean)


class MalformedResponse(Exception):
    """The model answered with something that is not text; retried as a transient error."""


@runtime_checkable
class Model(Protocol):
    id: str

    async def generate(self, messages: list[Message], *, seed: int) -> Completion: ...


class FunctionModel:
    """A seeded simulated model: ``fn(prompt_text, rng) -> str``.

    Each sample gets its own ``random.Random(seed)``, so a run is reproducible and the true
    pass rate of a check is whatever ``fn`` makes it.
    """

    def __init__(self, fn: Callable[[str, random.Random], str], id: str | None = None) -> None:
        self.fn = fn
        self.id = id or f"function:{getattr(fn, '__name__', 'fn')}"

    async def generate(self, messages: list[Message], *, seed: int) -> Completion:
        return Completion(_as_str(self.fn(as_text(messages), random.Random(seed)), self.id))


class CallableModel:
    """A plain ``str -> str`` function (sync or async); sync ones run in a worker thread."""

    def __init__(self, fn: Callable[[str], Any], id: str | None = None) -> None:
        self.fn = fn
        self.id = id or f"callable:{getattr(fn, '__name__', 'fn')}"

    async def generate(self, messages: list[Message], *, seed: int) -> Completion:
        text = as_text(messages)
        if inspect.iscoroutinefunction(self.fn):
            out = await self.fn(text)
        else:
            out = await asyncio.to_thread(self.fn, text)
        return Completion(_as_str(out, self.id))


_ROLE_CLASSES = {"system": "SystemMessage", "human": "HumanMessage", "ai": "AIMessage"}


class LangChainModel:
    """Any LangChain chat model or Runnable that takes a list of messages."""

    def __init__(self, runnable: Any, id: str | None = None) -> None:
        self.runnable = runnable
        self.id = id or _langchain_id(runnable)

    async def generate(self, messages: list[Message], *, seed: int) -> Completion:
        import langchain_core.messages as lc

        payload = [getattr(lc, _ROLE_CLASSES.get(role, "HumanMessage"))(content=text) for role, text in messages]
        # Models that take a per-sample seed (the local model) get one: reproducible runs.
        extra = {"seed": seed} if getattr(self.runnable, "llmops_seeded", False) else {}
        result = await self.runnable.ainvoke(payload, **extra)
        if isinstance(result, str):
            return Completion(result)
        content = getattr(result, "content", None)
        if isinstance(content, list):
            content = content_text(content)
        if not isinstance(content, str):
            raise MalformedResponse(f"model {self.id} returned {type(result).__name__}, not a message with text")
        usage = getattr(result, "usage_metadata", None) or {}
        return Completion(content, usage.get("input_tokens"), usage.get("output_tokens"))


_SECRET_FIELD = ("key", "token", "secret", "password", "credential", "auth")
_IDENTITY_FIELDS = ("base_url", "openai_api_base", "api_base", "endpoint", "azure_endpoint", "deployment_name")


def model_identity(model: Model) -> dict[str, Any] | None:
    """What makes a model's answers what they are: class, model name, base URL, sampling settings.

    Used as the response cache key and as MLflow params, so it never holds a secret (no
    field named like a key or token, no SecretStr).  None for models whose behaviour
    cannot be named (plain functions, simulations): those are never cached.
    """
    if isinstance(model, LangChainModel):
        r = model.runnable
        params: dict[str, Any] = {"class": type(r).__name__}
        try:
            params.update(getattr(r, "_identifying_params", {}) or {})
        except Exception:  # a Runnable without identifying params
            pass
        for attr in _IDENTITY_FIELDS:
            v = getattr(r, attr, None)
            if isinstance(v, str) and v:
                params[attr] = v
        clean = {
            k: _plain(v)
            for k, v in params.items()
            if not any(w in k.lower() for w in _SECRET_FIELD) and type(v).__name__ != "SecretStr"
        }
        clean = {k: v for k, v in clean.items() if v is not _SKIP}
        if set(clean) == {"class"} and not hasattr(r, "_identifying_params"):
            return None  # an arbitrary Runnable: its behaviour has no name
        return {"id": model.id, **clean}
    identity = getattr(model, "identity", None)  # a Model may name its own settings
    if isinstance(identity, dict):
        return {"id": model.id, **identity}
    return None


_SKIP = object()


def _plain(v: Any) -> Any:
    """A setting as JSON-able data (lists of replies of a fake model count too); _SKIP otherwise."""
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool, type(None))) for x in v):
        return list(v)
    return _SKIP


def _as_str(out: Any, model_id: str) -> str:
    if not isinstance(out, str):
        raise MalformedResponse(f"model {model_id} returned {type(out).__name__}, not str")
    return out


def _langchain_id(runnable: Any) -> str:
    for attr in ("model_name", "model", "model_id"):
        v = getattr(runnable, attr, None)
        if isinstance(v, str) and v:
            return f"{type(runnable).__name__}:{v}"
    return type(runnable).__name__


def resolve_model(spec: Any) -> Model:
    """Turn what a user passes (a model, a string, a LangChain object, a callable) into a Model."""
    if spec is None:
        raise ModelError(
            "no model configured: pass --llmops-model (e.g. --llmops-model local:smollm2 or "
            "openai:gpt-4o-mini), set llmops_model in the ini file, or override the llmops_model fixture"
        )
    from llmops.redact import register_secrets

    register_secrets(spec)  # the API keys a model object holds never reach an output
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, str):
        return _from_string(spec)
    if hasattr(spec, "ainvoke"):
        return LangChainModel(without_client_retries(spec))
    if callable(spec):
        return CallableModel(spec)
    raise ModelError(
        f"cannot use {type(spec).__name__} as a model: give a LangChain model, a 'provider:model' string or a callable"
    )


@lru_cache(maxsize=32)
def _from_string(spec: str) -> Model:
    """One model object per string per process (the local model loads its weights once)."""
    if spec.startswith("local:"):
        from llmops.models.local import local_model

        return local_model(spec)
    if ":" not in spec:
        raise ModelError(f"model {spec!r}: use 'provider:model', e.g. 'openai:gpt-4o-mini', or 'local:smollm2'")
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:  # pragma: no cover - langchain is a dependency
        raise ModelError("model strings need the 'langchain' package: pip install langchain") from None
    try:
        chat = init_chat_model(spec)
    except ImportError as e:
        raise ModelError(
            f"model {spec!r}: the provider package is missing ({e}); install it, e.g. pip install langchain-{spec.split(':')[0]}"
        ) from None
    except Exception as e:
        raise ModelError(f"model {spec!r} could not be created: {e}") from None
    return LangChainModel(without_client_retries(chat), id=spec)


# The model objects llmops made without client retries, by the id of the user's object (which
# is kept alive here, so its id is not reused); bounded, as a session makes few.
_WITHOUT_RETRIES: dict[int, tuple[Any, Any]] = {}
_CLIENT_FIELDS = ("client", "async_client", "root_client", "root_async_client")


def without_client_retries(chat: Any) -> Any:
    """A copy of a LangChain chat model with its client's own retries off; the user's object is unchanged.

    The OpenAI and Anthropic clients retry by themselves (``max_retries``, 2 by default), so
    llmops's retries would multiply with theirs and no count of requests would be right:
    llmops owns the retry policy (backoff, Retry-After, the permanent-error breaker).  A
    model inside a binding (``chat.bind(...)``) or a chain (``prompt | chat``) gets the same
    wrapper around the copy.  Models without a ``max_retries`` field are used as they are.
    """
    held = _WITHOUT_RETRIES.get(id(chat))
    if held is not None and held[0] is chat:
        return held[1]
    copy = _rebuilt(chat)
    if copy is not chat:
        if len(_WITHOUT_RETRIES) >= 64:
            _WITHOUT_RETRIES.clear()
        _WITHOUT_RETRIES[id(chat)] = (chat, copy)
    return copy


def _rebuilt(chat: Any) -> Any:
    fields = getattr(type(chat), "model_fields", {})
    if "max_retries" in fields:
        if getattr(chat, "max_retries", None) == 0:
            return chat
        # Rebuilt from the fields the user set (so the clients are made again, with max_retries=0),
        # not copied: a copy would keep the clients, and their retries, of the original.
        settings = {k: getattr(chat, k) for k in chat.model_fields_set if k not in _CLIENT_FIELDS}
        try:
            return type(chat)(**{**settings, "max_retries": 0})
        except Exception:  # a model that cannot be rebuilt from its own fields: use it as it is
            return chat
    parts: dict[str, Any] = {}
    for name in ("bound", "first", "last"):  # RunnableBinding, RunnableSequence
        inner = getattr(chat, name, None) if name in fields else None
        if inner is not None and without_client_retries(inner) is not inner:
            parts[name] = without_client_retries(inner)
    if "middle" in fields:
        middle = [without_client_retries(step) for step in chat.middle]
        if any(new is not old for new, old in zip(middle, chat.middle, strict=True)):
            parts["middle"] = middle
    return chat.model_copy(update=parts) if parts else chat
