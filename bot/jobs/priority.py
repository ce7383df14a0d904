"""Queue priority per user from their roles (``role_priority`` setting): ``QueuePriority``.

The engine's fair queue asks ``priority(owner)`` when a job joins the line; the bot notes each
user's best role priority as their interactions arrive (the engine knows no roles). Users without
a listed role have 0; the memory is bounded (the oldest users are forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

__all__ = ["QueuePriority"]

REMEMBERED_USERS = 10_000


class QueuePriority:
    """``note(user_id, role_ids)`` as interactions come; ``self(owner)`` for the dispatcher."""

    def __init__(self, by_role: Mapping[int, int]):
        self._by_role = dict(by_role)
        self._users: OrderedDict[str, int] = OrderedDict()

    def note(self, user_id: int, role_ids: Iterable[int]) -> None:
        if not self._by_role:
            return
        best = max((self._by_role[r] for r in role_ids if r in self._by_role), default=0)
        key = str(user_id)
        self._users[key] = best
        self._users.move_to_end(key)
        while len(self._users) > REMEMBERED_USERS:
            self._users.popitem(last=False)

    def __call__(self, owner: str) -> int:
        return self._users.get(owner, 0)
