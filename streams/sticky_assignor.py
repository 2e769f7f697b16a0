"""Faust's copartitioned assignor, made to keep partitions where they are when a worker joins.

Faust assigns each group of copartitioned topics (here the schedule, lab and control topics, partition by
partition) with ``CopartitionedAssignor``, which its docstring calls sticky: each member's previous partitions
are kept "as long as within capacity". Without standby replicas that capacity is the *minimum* share
(``floor(partitions / members)``), so every member first drops down to it, dropping any of its partitions
(a set's ``pop``), and the partitions dropped are dealt out round-robin again, to whichever member is next.
Measured with three workers and four partitions (bench/faults/scaleout.py): when the lost worker came back, one
partition went to it, as it must, and one more moved from one survivor to the other for nothing. A moved
partition is not processed until its tables have been recovered on its new owner (a full changelog replay for
the in-memory store), so each needless move is a pause of part of the day.

This assignor first gives each dropped partition back to its previous owner, as long as the owner stays within
the maximum share and enough partitions remain for every member to reach the minimum; only what is left is
dealt out by Faust's own round-robin, and everything Faust checks afterwards (each partition assigned exactly
once, standbys never on the active's member) still holds. Installed by streams/faust_fixes.py (point 5).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from faust.assignor.copartitioned_assignor import CopartitionedAssignor


class StickyCopartitionedAssignor(CopartitionedAssignor):
    def __init__(self, topics: Iterable[str], cluster_asgn: MutableMapping[str, Any], num_partitions: int,
                 replicas: int, capacity: int | None = None) -> None:
        super().__init__(topics, cluster_asgn, num_partitions, replicas, capacity)
        # What each member held before Faust drops extras (sorted: the same choice on every leader)
        self._previous: dict[int, list[str]] = {}
        for client in sorted(cluster_asgn):
            for partition in sorted(cluster_asgn[client].actives):
                self._previous.setdefault(partition, []).append(client)

    def _assign_round_robin(self, unassigned: Iterable[int], active: bool) -> None:
        rest = list(unassigned)
        if active:
            for partition in sorted(set(rest)):
                owner = self._returnable_to(partition, rest)
                if owner is not None:
                    self._client_assignments[owner].assign_partition(partition, active=True)
                    rest.remove(partition)
        super()._assign_round_robin(rest, active)

    def _returnable_to(self, partition: int, rest: list[int]) -> str | None:
        """The previous owner that may have ``partition`` back: under the maximum share, and not at the cost of
        a member left below the minimum share for want of partitions."""
        limit = self._get_client_limit(active=True)
        for owner in self._previous.get(partition, ()):
            assignment = self._client_assignments.get(owner)
            if assignment is None or not assignment.can_assign(partition, True):
                continue
            held = assignment.num_assigned(True)
            if held >= limit:
                continue
            short = sum(max(0, self.min_capacity - a.num_assigned(True)) for a in self._client_assignments.values())
            if held >= self.min_capacity and len(rest) - 1 < short:
                continue
            return owner
        return None
