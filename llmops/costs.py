"""What calls cost: a price table (built in, as data, overridable) and a session budget.

Prices are USD per million input and output tokens.  The order: a price given for the
session (``--llmops-price IN,OUT``), then the user's table (``--llmops-prices FILE``), then
the built-in ``llmops/data/prices.json``; the embedded local model is free; anything else
is unknown (None), shown as "cost unknown", never $0.

The budget (``--llmops-budget 500`` calls or ``$2.50``) is shared by every process of a
session (pytest-xdist workers too) through a small locked file, so the session stops
drawing once it is spent; a requirement that could not be decided ends as ERROR.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from llmops.errors import ConfigError, StopSampling

Price = tuple[float, float]


@lru_cache(maxsize=8)
def price_table(path: str | None = None) -> dict[str, Price]:
    """The built-in table, overlaid with the user's table at ``path``."""
    text = resources.files("llmops").joinpath("data/prices.json").read_text(encoding="utf-8")
    table = {k: (float(v[0]), float(v[1])) for k, v in json.loads(text)["prices"].items()}
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            user = data.get("prices", data)
            table.update({str(k): (float(v[0]), float(v[1])) for k, v in user.items()})
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise ConfigError(
                f'prices file {path}: expected JSON {{"prices": {{"model-name": [input, output]}}}} '
                f"in USD per million tokens ({e})"
            ) from None
    return table


def price_of(model_id: str, given: Price | None = None, table_path: str | None = None) -> Price | None:
    """USD per million (input, output) tokens for a model, or None when unknown."""
    if given is not None:
        return given
    if model_id.startswith("local:"):
        return (0.0, 0.0)
    table = price_table(table_path)
    name = model_id.rsplit(":", 1)[-1].split("?", 1)[0]
    if name in table:
        return table[name]
    prefixes = [k for k in table if name.startswith(k + "-")]  # dated names: gpt-4o-mini-2024-07-18
    return table[max(prefixes, key=len)] if prefixes else None


def cost_of(price: Price | None, tokens_in: int, tokens_out: int) -> float | None:
    return None if price is None else (tokens_in * price[0] + tokens_out * price[1]) / 1e6


class _Drawn(Protocol):
    """What ``spend`` reads of a drawn sample (``llmops.sampling.Sample``)."""

    @property
    def cached(self) -> bool: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...


D = TypeVar("D", bound=_Drawn)


def reserve(
    budget: Budget | None,
    price: Price | None,
    what: str,
    calls: int,
    *,
    fix: str = "give --llmops-price IN,OUT or a --llmops-prices table",
) -> None:
    """Reserve ``calls`` in the session's budget before they are made (BudgetSpent when they
    do not fit).  A dollar budget needs the price of ``what`` (a model): without it nothing
    is reserved and ``fix`` says what to do."""
    if budget is None:
        return
    if budget.kind == "usd" and price is None:
        raise BudgetSpent(f"a budget of {budget.describe()} needs a price for {what}, and none is known; {fix}")
    budget.reserve(calls)


def settle(budget: Budget | None, price: Price | None, taken: Sequence[_Drawn | None]) -> None:
    """After reserved calls: refund those replayed from the cache or withdrawn (None) before
    their call started, and charge what the live ones cost."""
    if budget is None or not taken:
        return
    live = [x for x in taken if x is not None and not x.cached]
    budget.refund(len(taken) - len(live))
    tokens = (sum(x.input_tokens or 0 for x in live), sum(x.output_tokens or 0 for x in live))
    budget.charge(len(live), cost_of(price, *tokens))


def spend(
    budget: Budget | None,
    price: Price | None,
    what: str,
    calls: int,
    draw: Callable[[], list[D]],
    *,
    fix: str = "give --llmops-price IN,OUT or a --llmops-prices table",
) -> list[D]:
    """``draw()`` of up to ``calls`` samples within the session's budget (``reserve``, then ``settle``)."""
    reserve(budget, price, what, calls, fix=fix)
    drawn = draw()
    settle(budget, price, drawn)
    return drawn


class BudgetSpent(StopSampling):
    """The session's budget is spent: no more model calls."""


class Budget:
    """A session-wide limit on calls or dollars, shared across processes through a locked file."""

    def __init__(self, kind: str, limit: float, path: str | Path | None = None) -> None:
        self.kind = kind  # "calls" or "usd"
        self.limit = limit
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._local = {"calls": 0.0, "usd": 0.0}

    def describe(self) -> str:
        return f"{int(self.limit)} calls" if self.kind == "calls" else f"${self.limit:.2f}"

    def _update(self, change: Any) -> dict[str, float]:
        with self._lock:
            if self.path is None:
                change(self._local)
                return dict(self._local)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.seek(0)
                text = f.read()
                state = json.loads(text) if text.strip() else {"calls": 0.0, "usd": 0.0}
                change(state)
                f.seek(0)
                f.truncate()
                f.write(json.dumps(state))
                f.flush()
                return dict(state)

    def spent(self) -> dict[str, float]:
        return self._update(lambda state: None)

    def reserve(self, calls: int) -> None:
        """Before drawing ``calls`` live calls: raise BudgetSpent if they do not fit."""

        def take(state: dict[str, float]) -> None:
            if self.kind == "calls":
                if state["calls"] + calls > self.limit:
                    raise BudgetSpent(
                        f"the session's budget of {self.describe()} is spent ({int(state['calls'])} calls made; "
                        f"{calls} more were needed)"
                    )
                state["calls"] += calls
            elif state["usd"] >= self.limit:
                raise BudgetSpent(f"the session's budget of {self.describe()} is spent (${state['usd']:.4f})")

        self._update(take)

    def charge(self, calls: int, usd: float | None) -> None:
        """After drawing: refund reserved calls that were replayed, add what was paid."""

        def add(state: dict[str, float]) -> None:
            if self.kind == "usd":
                state["calls"] += calls
            state["usd"] += usd or 0.0

        self._update(add)

    def refund(self, calls: int) -> None:
        if self.kind == "calls" and calls:

            def back(state: dict[str, float]) -> None:
                state["calls"] -= calls

            self._update(back)


def budget_from(setting: tuple[str, float] | None, path: str | Path | None = None) -> Budget | None:
    if setting is None:
        return None
    return Budget(setting[0], setting[1], path or os.environ.get("LLMOPS_BUDGET_FILE"))
