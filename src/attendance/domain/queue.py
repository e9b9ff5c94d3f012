"""What the broker holds of the jobs' task messages, as the reconciler sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """A message a worker has taken and not acknowledged yet."""

    tag: str
    at: float  # when it was taken (Unix time)


@dataclass(frozen=True)
class BrokerView:
    waiting: frozenset[str]  # task ids of the messages in the queues
    delivered: dict[str, Delivery]  # task id -> a message of it that a worker holds
