"""Fault injection: make the emulator misbehave the way networks and gateways do."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from airflow_provider_blink.endpoints import ENDPOINTS as BLINK_ENDPOINTS

#: Where a fault can show: an endpoint of the provider's registry, or ``*`` for any of them.
ENDPOINTS = frozenset({*BLINK_ENDPOINTS, "*"})
#: Fault kinds that change a list answer's items (only for the ``list`` endpoint): answers Blink's
#: contract does not allow, for testing that a client trusts no list answer beyond its question.
LIST_KINDS = frozenset({"unasked_items", "conflicting_items"})

#: Fault kinds whose request is processed (an execute creates its execution) before the fault shows.
PROCESSED_KINDS = frozenset(
    {
        "close_after",
        "status_after",
        "slow",
        "slow_after",
        "malformed_json",
        "empty",
        "unfiltered",
        *LIST_KINDS,
    }
)
#: Fault kinds that answer in place of the real handler: nothing is processed.
UNPROCESSED_KINDS = frozenset({"status", "close_before", "html"})
KINDS = PROCESSED_KINDS | UNPROCESSED_KINDS


@dataclass(frozen=True)
class Fault:
    """
    One injected misbehaviour, applied to the next ``times`` matching requests (after auth).

    Kinds: ``status`` (answer ``status`` with an ErrorWrapper, plus ``Retry-After`` when
    ``retry_after`` is set; not processed), ``close_before`` (drop the connection unread; not
    processed), ``close_after`` (process, then drop the connection without answering),
    ``status_after`` (process, then answer ``status`` anyway), ``slow`` (wait ``delay`` seconds, then
    behave normally), ``slow_after`` (process at once, answer after ``delay`` seconds: a client
    that times out has still started the run), ``malformed_json`` (process, answer 200 with truncated JSON), ``html`` (answer
    ``status``, default 502, with a gateway's HTML page; not processed), ``empty`` (process, answer
    200 with an empty body), ``unasked_items`` (process, then add ``count`` items ``{"id": ...}`` for
    ids nobody asked for to the list answer), ``conflicting_items`` (process, then put before each list
    item a copy of it in another final state: ``Failed`` for a ``Completed`` one, else ``Completed``),
    ``unfiltered`` (a list answers every execution of every workspace, newest first, whatever its
    filter and ``limit`` asked; a get finds an execution in any workspace).

    :param endpoint: ``execute``, ``get``, ``list``, ``cancel``, ``steps`` or ``*`` for any of them.
    :param kind: one of the kinds above.
    :param times: how many matching requests it affects; ``None`` means until ``clear_faults()``.
    :param status: HTTP status for ``status``, ``status_after`` and ``html``.
    :param retry_after: seconds for a ``Retry-After`` header (``status`` and ``status_after``).
    :param delay: seconds to wait for ``slow`` and ``slow_after``.
    :param count: items to add for ``unasked_items``.
    """

    endpoint: str
    kind: str
    times: int | None = 1
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown fault endpoint {self.endpoint!r}; expected one of {sorted(ENDPOINTS)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None, got {self.times!r}")
        if self.kind in {"status", "status_after"} and self.status is None:
            raise ValueError(f"fault kind {self.kind!r} needs a status")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay!r}")
        if self.kind in LIST_KINDS and self.endpoint != "list":
            raise ValueError(f"fault kind {self.kind!r} changes list answers: endpoint must be 'list'")
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count!r}")

    @property
    def processed(self) -> bool:
        """Whether the request is still processed (e.g. the execution created) under this fault."""
        return self.kind in PROCESSED_KINDS


@dataclass
class _Pending:
    fault: Fault
    remaining: int | None


class FaultQueue:
    """Injected faults in FIFO order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def inject(self, fault: Fault) -> None:
        """Queue ``fault`` behind the faults already injected."""
        with self._lock:
            self._pending.append(_Pending(fault, fault.times))

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the oldest fault matching ``endpoint``, if any."""
        with self._lock:
            for index, entry in enumerate(self._pending):
                if entry.fault.endpoint not in (endpoint, "*"):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        del self._pending[index]
                return entry.fault
        return None

    def pending(self) -> list[Fault]:
        """The faults not yet consumed, oldest first."""
        with self._lock:
            return [entry.fault for entry in self._pending]
