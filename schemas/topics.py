"""The one place that knows topic names and how each topic is keyed.

Schedule, lab and control topics are keyed by ``session_id`` and must have the same partition count: the worker
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
DEADLETTER = TopicSpec("cact.deadletter.v1", "source_topic", "Input the pipeline could not accept, with a reason.")
#: Events only the pipeline itself sends (the wall-clock fallback, `cact rescore`): labs have no reason to write
#: here, and a secured cluster grants it to the pipeline's principal alone (docs/operations.md "Trust model").
CONTROL = TopicSpec("cact.control.v1", "session_id",
                    "The pipeline's own decisions: wall-clock window closes, rescores.")

INPUT_TOPICS: tuple[TopicSpec, ...] = (SCHEDULE, LAB, CONTROL)
OUTPUT_TOPICS: tuple[TopicSpec, ...] = (RESULTS, ATTENDANCE, DEADLETTER)
ALL_TOPICS: tuple[TopicSpec, ...] = INPUT_TOPICS + OUTPUT_TOPICS
