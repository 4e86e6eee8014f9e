"""Seeded fault injection: which requests the sandbox delays, fails or cuts.

Every request draws exactly two numbers from one ``random.Random(seed)`` under a lock:
one for its latency jitter, one for its fault. So a given seed and a given order of
requests always produce the same faults, whatever the rates are.

The fault rates are shares of all requests and must add up to at most 1: one draw ``r``
picks the fault whose interval [sum of previous rates, + its rate) contains it. The Graph
errors a user asks for (GraphErrorFault) come after the named kinds, in the order given, so
adding one changes no other fault a seed gives. A request hit by ``cut_after_accept`` or
``slow_response`` that turns out invalid is rejected as usual (the fault only applies to
accepted requests).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from target_meta_capi.sandbox.graph_errors import GraphError

HTML_502 = "html_502"
TRANSIENT_ERROR = "transient_error"
THROTTLE = "throttle"
CUT_AFTER_ACCEPT = "cut_after_accept"
SLOW_RESPONSE = "slow_response"
GRAPH_ERROR = "graph_error"

# before validation: the request never reaches "Meta", nothing is stored
FAULTS_BEFORE_PROCESSING = (HTML_502, TRANSIENT_ERROR, THROTTLE, GRAPH_ERROR)
# after the events were stored: the client cannot tell whether they arrived
FAULTS_AFTER_ACCEPT = (CUT_AFTER_ACCEPT, SLOW_RESPONSE)
FAULT_KINDS = FAULTS_BEFORE_PROCESSING + FAULTS_AFTER_ACCEPT
#: the kinds whose share is one rate each; GRAPH_ERROR has one per GraphErrorFault
RATED_FAULT_KINDS = tuple(kind for kind in FAULT_KINDS if kind != GRAPH_ERROR)

# latency is the mean; each request gets mean * uniform(1 - JITTER, 1 + JITTER)
LATENCY_JITTER = 0.2


@dataclass(frozen=True)
class GraphErrorFault:
    """A share ``rate`` of requests answered with this Graph error, before they are looked
    at (nothing stored): to test how a sender handles a given error of Meta's."""

    rate: float
    http_status: int
    code: int
    subcode: int | None = None
    is_transient: bool = False
    #: Graph's messages start with the code: "(#613) Calls to this api have exceeded ..."
    message: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"a graph error's rate must be between 0 and 1, got {self.rate}")
        if not 400 <= self.http_status <= 599:
            raise ValueError(
                f"a graph error's HTTP status must be from 400 to 599, got {self.http_status}"
            )
        if self.code < 0 or (self.subcode is not None and self.subcode < 0):
            raise ValueError("a graph error's code and subcode must be whole numbers >= 0")

    def error(self) -> GraphError:
        return GraphError(
            self.http_status,
            self.code,
            self.message or f"(#{self.code}) Error injected by the sandbox",
            subcode=self.subcode,
            is_transient=self.is_transient,
        )


@dataclass(frozen=True)
class FaultDecision:
    latency_seconds: float
    fault: str | None
    #: for a GRAPH_ERROR, which of the injector's graph errors (its index)
    graph_error: int | None = None


def check_settings(
    latency_ms: float, rates: dict[str, float], graph_error_rates: Sequence[float] = ()
) -> None:
    """Raise ValueError for settings FaultInjector cannot honour."""
    for kind, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            # named as SandboxConfig's field is
            raise ValueError(f"{kind}_rate must be between 0 and 1, got {rate}")
    if sum(rates.values()) + sum(graph_error_rates) > 1.0 + 1e-9:
        raise ValueError("fault rates must add up to at most 1")
    # a wait of inf seconds fails (OverflowError), one of nan is no wait at all
    if not 0 <= latency_ms < math.inf:
        raise ValueError(f"latency_ms must be a finite number >= 0, got {latency_ms}")


class FaultInjector:
    def __init__(
        self,
        *,
        seed: int,
        latency_ms: float,
        rates: dict[str, float],
        graph_error_rates: Sequence[float] = (),
    ) -> None:
        check_settings(latency_ms, rates, graph_error_rates)
        self._seed = seed
        self._mean_latency_seconds = latency_ms / 1000.0
        self._thresholds: list[tuple[float, str, int | None]] = []
        shares: list[tuple[str, int | None, float]] = [
            (kind, None, rates.get(kind, 0.0)) for kind in RATED_FAULT_KINDS
        ]
        shares += [(GRAPH_ERROR, index, rate) for index, rate in enumerate(graph_error_rates)]
        cumulative = 0.0
        for kind, index, rate in shares:
            if rate > 0:
                cumulative += rate
                self._thresholds.append((cumulative, kind, index))
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def decide(self) -> FaultDecision:
        with self._lock:
            jitter_draw = self._random.random()
            fault_draw = self._random.random()
        latency = self._mean_latency_seconds * (1.0 + LATENCY_JITTER * (2.0 * jitter_draw - 1.0))
        for threshold, kind, index in self._thresholds:
            if fault_draw < threshold:
                return FaultDecision(latency, kind, index)
        return FaultDecision(latency, None)

    def reset(self) -> None:
        """Start the same sequence of decisions again."""
        with self._lock:
            self._random = random.Random(self._seed)
