"""SI ASN on the wire: the payloads we send, how its answers are sorted, and how its records compare.

Pure functions over ``httpx.Response`` and dicts (no I/O), so the sorting rules are testable on their own:

- An answer is data, a final rejection (:class:`~sinks.siasn.errors.SiasnRejected`), an authorisation failure,
  or a :class:`Transient` failure worth retrying. ``Transient.sent`` says whether SI ASN may have acted on the
  request: a save is not idempotent on SI ASN's side, so an ambiguous failure is read back before re-sending.
- Both envelopes SI ASN uses are understood: ``{code, count, data, message}`` (ok when code is 1 or 200) and
  ``{mapData, message, success}`` (ok when success is true).
- Records read back are normalised (SI ASN may send ``"3"`` or ``3.0`` for a level) before they are compared
  with what we meant to save.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from schemas.domain import POTENTIAL_FIELDS, SIASN_FIELD
from sinks.siasn.errors import SiasnAuthError, SiasnRejected
from sinks.siasn.logmask import mask_nips

#: The nine competency fields of ``POST /kompetensi/kompetensi/save``, in the order of domain.md §3.
KOMPETENSI_FIELDS: tuple[str, ...] = tuple(SIASN_FIELD.values())
#: The six score fields of ``POST /kompetensi/potensi/save`` (besides ``pnsOrangId``).
POTENSI_FIELDS: tuple[str, ...] = (*POTENTIAL_FIELDS, "total")
_OK_CODES = frozenset({"1", "200"})  # the {code, count, data, message} envelope's "all good"


class Transient(Exception):
    """A failure worth retrying. ``sent``: SI ASN may have acted on the request (ambiguous for a save).

    ``retry_after`` is the server's Retry-After in seconds, which the retry policy (schemas/retry.py) honours.
    """

    def __init__(self, detail: str, *, sent: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail, self.sent, self.retry_after = detail, sent, retry_after


# ---- requests that failed -----------------------------------------------------------------------

def was_sent(exc: httpx.RequestError) -> bool:
    """False only when the request certainly never left: then a retry cannot duplicate anything."""
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def describe(exc: BaseException) -> str:
    """The error's class and text, NIPs masked and cut short: fit for a log line and an exception text."""
    text = str(exc)
    return type(exc).__name__ + (f": {mask_nips(text)[:300]}" if text else "")


# ---- answers ------------------------------------------------------------------------------------

def body_of(resp: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None


def retry_after(resp: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (the delta form; an HTTP date is ignored)."""
    try:
        return float(resp.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def message_of(body: Any) -> str:
    """SI ASN's own message in an answer (whichever key it used), at most 2000 characters."""
    if not isinstance(body, dict):
        return ""
    for key in ("message", "error_description", "error", "description"):
        if body.get(key):
            return str(body[key])[:2000]
    return ""


def parse(resp: httpx.Response, *, empty_if_not_found: bool = False) -> dict[str, Any]:
    """Sort an answer into data, a final rejection or a transient failure.

    A 5xx other than 503 may have been acted on upstream (a gateway timing out on a slow backend), so it is
    ambiguous; 503, 408 and 429 are not. For reads, "not found" means "no records".
    """
    code = resp.status_code
    body = body_of(resp)
    if code >= 500 or code in (408, 429):
        raise Transient(f"HTTP {code}", sent=code not in (408, 429, 503), retry_after=retry_after(resp))
    if code == 403:
        raise SiasnAuthError(f"SI ASN forbade the call (HTTP 403, IP allow-list?): {message_of(body)}".rstrip(": "))
    if code == 404 and empty_if_not_found:
        return {}
    if code >= 400:
        raise SiasnRejected(message_of(body) or f"HTTP {code}", status_code=code)
    if not isinstance(body, dict):
        raise Transient(f"HTTP {code} without a JSON object", sent=True)
    failed = ("success" in body and body["success"] not in (True, "true")) or (
        "code" in body and str(body["code"]) not in _OK_CODES)
    if failed:
        if empty_if_not_found and not body.get("data"):
            return {}
        raise SiasnRejected(message_of(body) or "SI ASN did not accept the request", status_code=code)
    return body


def records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The records in a read's ``data`` (one object or a list of them)."""
    data = body.get("data")
    if isinstance(data, dict):
        return [data]
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


# ---- payloads -----------------------------------------------------------------------------------

def kompetensi_fields(levels: Mapping[str, int]) -> dict[str, int]:
    """The nine levels (integers 1..5) in SI ASN's order; anything else can never be delivered: rejected here."""
    problems = [f"missing {k}" for k in KOMPETENSI_FIELDS if k not in levels]
    problems += [f"unknown field {k}" for k in levels if k not in KOMPETENSI_FIELDS]
    problems += [f"{k} must be an integer 1..5" for k, v in levels.items() if k in KOMPETENSI_FIELDS
                 and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5)]
    if problems:
        raise SiasnRejected("not sent to SI ASN: " + "; ".join(problems))
    return {k: int(levels[k]) for k in KOMPETENSI_FIELDS}


def potensi_fields(potensi: Mapping[str, float]) -> dict[str, float]:
    """The six potential scores (finite numbers); anything else is rejected here, before any call."""
    problems = [f"missing {k}" for k in POTENSI_FIELDS if k not in potensi]
    problems += [f"unknown field {k}" for k in potensi if k not in POTENSI_FIELDS]
    problems += [f"{k} must be a finite number" for k, v in potensi.items() if k in POTENSI_FIELDS
                 and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v))]
    if problems:
        raise SiasnRejected("not sent to SI ASN: " + "; ".join(problems))
    return {k: potensi[k] for k in POTENSI_FIELDS}


# ---- records read back --------------------------------------------------------------------------

def _as_int(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if not isinstance(value, bool) and number.is_integer() else value


def _as_float(value: Any) -> Any:
    try:
        return value if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return value


def normalise_kompetensi(record: dict[str, Any]) -> dict[str, Any]:
    """Levels and year as ints, whatever SI ASN sent ("3", 3.0): comparisons then mean what they say."""
    return {k: _as_int(v) if k in KOMPETENSI_FIELDS or k == "tahun" else v for k, v in record.items()}


def normalise_potensi(record: dict[str, Any]) -> dict[str, Any]:
    """Scores as floats, whatever SI ASN sent."""
    return {k: _as_float(v) if k in POTENSI_FIELDS else v for k, v in record.items()}


def same_kompetensi(record: dict[str, Any], fields: dict[str, int], year: int) -> bool:
    """Identical levels for the same year (a record without a year is compared on levels alone).

    An identical record of the same year means SI ASN already holds exactly this result: a second copy
    would add nothing, whichever try wrote the first.
    """
    return all(record.get(k) == v for k, v in fields.items()) and record.get("tahun", year) in (year, None)


def same_potensi(record: dict[str, Any], fields: dict[str, float]) -> bool:
    """The same six scores, to a millionth (SI ASN may round-trip them through text)."""
    return all(isinstance(record.get(k), float) and math.isclose(record[k], float(v), abs_tol=1e-6)
               for k, v in fields.items())
