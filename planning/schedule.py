"""When each item happens: a simple appointment schedule in weeks.

One patient sits in one chair: appointments follow each other, at most one every
``visit_interval_weeks``. Phases run in clinical order, each starting when the one
before has finished its appointments. Inside a phase, the next item is the one that
can start earliest (its dependencies finished and healed), ties broken by creation
order, so healing waits overlap other work instead of stalling the plan. Items done
in the same visits as another (``leader``) start with it and add no appointments: a
visit group takes as many appointments as its longest member.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Job:
    """What the scheduler needs to know about one item."""

    key: Hashable
    phase: int  # phase order, 1 = urgent
    visits: int
    healing_weeks: float
    deps: frozenset = frozenset()
    leader: Hashable | None = None  # done in the same visits as this item


@dataclass
class Schedule:
    start: dict = field(default_factory=dict)  # key -> start week
    end: dict = field(default_factory=dict)  # key -> week the last appointment ends
    phase_span: dict = field(default_factory=dict)  # phase order -> (start week, end week)
    visits: dict = field(default_factory=dict)  # phase order -> appointments
    weeks: float = 0.0  # until every item has ended and healed


def schedule(jobs: Sequence[Job], visit_interval_weeks: float) -> Schedule:
    """Start and end weeks of every job (see the module docstring)."""
    by_key = {job.key: job for job in jobs}
    members: dict = {job.key: [job] for job in jobs if job.leader is None}
    for job in jobs:
        if job.leader is not None:
            members[job.leader].append(job)
    group_deps = {
        leader: frozenset().union(*(m.deps for m in group)) - {m.key for m in group} for leader, group in members.items()
    }
    result = Schedule()
    clock = 0.0
    for phase in sorted({job.phase for job in jobs}):
        pending = [key for key in members if by_key[key].phase == phase]
        phase_start = chair = clock
        appointments = 0
        while pending:
            def ready(key: Hashable) -> float:
                return max([chair] + [result.end[d] + by_key[d].healing_weeks for d in group_deps[key]])

            candidates = [key for key in pending if all(d in result.end for d in group_deps[key])]
            if not candidates:
                raise ValueError(f"items of phase {phase} depend on items that come later: {pending}")
            key = min(candidates, key=lambda k: (ready(k), pending.index(k)))
            group_visits = max(m.visits for m in members[key])
            start = ready(key)
            end = start + group_visits * visit_interval_weeks
            for member in members[key]:
                result.start[member.key], result.end[member.key] = start, end
            chair = end
            appointments += group_visits
            pending.remove(key)
        result.phase_span[phase] = (phase_start, chair)
        result.visits[phase] = appointments
        clock = chair
    result.weeks = max([clock] + [result.end[j.key] + j.healing_weeks for j in jobs])
    return result


__all__ = ["Job", "Schedule", "schedule"]
