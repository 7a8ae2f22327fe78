"""A service's state machine: the transitions it allows, and what it shows its clients.

A graph maps each state to the states it may become and, for each, the kinds of actor that may
make the move; :func:`check_transition` refuses any other as ``invalid_transition``. A service
lists its reason codes and states at a public ``/reasons`` endpoint, so clients can show them,
and an object's transitions at its ``/history``; each is the same JSON in every service.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from hub.errors import InvalidTransition

__all__ = ["check_transition", "history_items", "reason_items", "state_items"]

S = TypeVar("S", bound=str)


def check_transition(
    graph: Mapping[Any, Mapping[Any, Collection[str]]],
    current: str,
    target: str,
    actor: str,
    *,
    what: str,
) -> None:
    """Refuse a move of ``graph`` it does not have, or that an ``actor`` kind may not make.

    ``what`` names the object with its article ("a permit", "an application").
    """
    edges = graph.get(current)
    if edges is None or target not in edges:
        raise InvalidTransition(
            f"{what} that is {current} cannot become {target}",
            extra={"state": current, "target": target},
        )
    if actor not in edges[target]:
        raise InvalidTransition(
            f"the {actor} cannot make {what} that is {current} {target}",
            extra={"state": current, "target": target},
        )


def reason_items(reasons: Mapping[str, str]) -> list[dict[str, str]]:
    """Each reason code with its description."""
    return [{"code": code, "description": text} for code, text in reasons.items()]


def state_items(
    states: Sequence[S], transitions: Mapping[S, Collection[str]]
) -> list[dict[str, Any]]:
    """Each state with the states it may move to."""
    return [{"state": state, "next": sorted(transitions[state])} for state in states]


def history_items(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An object's transitions, oldest first, from the rows of its history table."""
    return [
        {
            "number": row["number"],
            "from": row["from_state"],
            "to": row["to_state"],
            "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
            "at": row["at"].isoformat(),
            "reason": row["reason"],
        }
        for row in rows
    ]
