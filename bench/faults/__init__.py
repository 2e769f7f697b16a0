"""Fault injection for the pipeline's own fault and hostile-input suites (issue 12): things that go wrong
on purpose (a CPU hog, kill -9 loops, a database cut, hostile input), each small enough to reuse from a
test at a small size and from ``make soak`` at full size."""
