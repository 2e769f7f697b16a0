"""The one place that knows topic names and how each topic is keyed.

Schedule and lab topics are keyed by ``session_id`` and must have the same partition count: the worker
relies on that co-partitioning to see a session's schedule, check-ins and answer sheets in one ordered
stream, so attendance and scoring state for a session lives in one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    doc: str
    retention: Literal["long", "default"] = "default"


SCHEDULE = TopicSpec("cact.schedule.v1", "session_id", "Schedule: sessions and who is expected in them.")
LAB = TopicSpec("cact.lab.v1", "session_id", "What happens in the exam labs, in real time.")
RESULTS = TopicSpec("cact.results.v1", "nip", "Scored results, one event per participant and result version.")
ATTENDANCE = TopicSpec("cact.attendance.v1", "session_id", "Attendance changes and per-session summaries.")
DEADLETTER = TopicSpec("cact.deadletter.v1", "source key", "Input the pipeline could not accept, with a reason.")

INPUT_TOPICS: tuple[TopicSpec, ...] = (SCHEDULE, LAB)
OUTPUT_TOPICS: tuple[TopicSpec, ...] = (RESULTS, ATTENDANCE, DEADLETTER)
ALL_TOPICS: tuple[TopicSpec, ...] = INPUT_TOPICS + OUTPUT_TOPICS
