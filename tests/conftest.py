"""Fixtures shared by unit and integration tests; what they hand out is built in tests/support/.

``pg_url`` gives the test session its own PostgreSQL database, so runs never see each other's rows (CI and
developers share the machine's server). ``store_cases`` holds the results-store scenarios
(support/store_scenarios.py), run unchanged against SQLite (unit) and PostgreSQL (integration) through the
``store_scenario`` parameter: the store must behave the same on both dialects.

This file's directory has no ``__init__.py``, so pytest puts tests/ on ``sys.path`` and ``support`` imports
as a package (support/__init__.py says more).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.database import fresh_database
from support.store_scenarios import STORE_SCENARIOS, StoreCases


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (``cact_test_<random>``), dropped at the end.

    Created through the ``test`` maintenance database (trust auth as ``postgres`` on 127.0.0.1:5432, or
    ``CACT_TEST_PG_ADMIN_URL``); ``DROP … WITH (FORCE)`` so a leaked connection cannot keep it alive.
    """
    with fresh_database("cact_test") as url:
        yield url


@pytest.fixture
def store_cases() -> StoreCases:
    return StoreCases()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_scenario" in metafunc.fixturenames:
        metafunc.parametrize("store_scenario", STORE_SCENARIOS)
