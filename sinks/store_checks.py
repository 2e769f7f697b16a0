"""A results-store URL refused before anything starts, and an unreachable store as one line (schemas/errors.py)."""

from __future__ import annotations

import shlex

from schemas.errors import EXIT_UNAVAILABLE, CliError, clean, mask_url

DATABASE_URL_EXAMPLE = "postgresql+psycopg://user:password@host:5432/cact or sqlite:///path/results.db"


def check_database_url(url: str) -> None:
    """Refuse, before anything starts, a CACT_DATABASE_URL that SQLAlchemy cannot even turn into an engine.

    No connection is made: a database that is down is waited for by the worker and the sink
    (docs/operations.md), but a URL that can never work must stop them at once.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = f"CACT_DATABASE_URL={shlex.quote(clean(mask_url(url), 300))}"
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        kind = clean(url.partition(":")[0], 40)
        reason = f"unknown database kind {kind!r}" if isinstance(exc, NoSuchModuleError) else "not a database URL"
        raise CliError(f"invalid setting {shown}: {reason}; give e.g. {DATABASE_URL_EXAMPLE}") from None
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise CliError(f"invalid setting {shown}: the results store is PostgreSQL or SQLite, not "
                       f"{parsed.get_backend_name()}; give e.g. {DATABASE_URL_EXAMPLE}")
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise CliError(f"invalid setting {shown}: its driver {parsed.get_driver_name()} is not installed "
                       f"({exc.name}); for PostgreSQL write postgresql+psycopg://…") from None


def database_unreachable(url: str, exc: BaseException) -> CliError:
    """The store did not answer (or refused the login): the URL without its password and the driver's reason."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    reason = clean(lines[0] if lines else type(orig).__name__, 300)
    return CliError(f"results store unavailable at {clean(mask_url(url), 300)} (CACT_DATABASE_URL): {reason}; "
                    "check that the database runs and accepts connections there, or correct CACT_DATABASE_URL",
                    EXIT_UNAVAILABLE)
