"""The operator token in front of the worker's pages (docs/operations.md, "Web surface and credentials").

Why a module of its own: who may read the operator page and ``/attendance.json`` is a security boundary, so
its rules are plain functions here, tested without a server (tests/unit/streams/test_web_auth.py); pages.py
only wires them to routes. The rules:

- One shared secret, the operator token: ``CACT_OPERATOR_TOKEN``, or ``CACT_OPERATOR_TOKEN_FILE`` (which
  wins when both are set). The file is read at every check, so a rotation is a file replaced, with no restart;
  a file other users may read or write is refused, as is a token shorter than ``MIN_TOKEN_CHARS``.
- Programs send ``Authorization: Bearer <token>``. Browsers log in once through ``/login``; the cookie holds an
  HMAC keyed by the token, never the token, so a stolen cookie does not reveal it and a rotation logs every
  browser out.
- Comparisons are constant-time over fixed-length digests. Neither the token nor what a client sent is ever
  logged; a wrong token is counted (``cact_web_login_failures_total``) instead.
- No token configured: the guarded pages answer 401 naming the variables to set (they are never open).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faust.web import View
from prometheus_client import Counter

from schemas.settings import Settings

log = logging.getLogger("cact.web")

COOKIE_NAME = "cact_operator"
#: A browser logs in again after this; a rotation of the token logs it out at once.
COOKIE_MAX_AGE_S = 12 * 3600
#: Shorter tokens are refused: the login form must not be guessable in a day of tries.
MIN_TOKEN_CHARS = 16
#: Larger token files are refused unread: a token is a line.
MAX_TOKEN_FILE_BYTES = 4096
DEFAULT_NEXT = "/operator"
LOGIN_PAGE = Path(__file__).parent / "web" / "login.html"
NOT_CONFIGURED = ("no usable operator token: set CACT_OPERATOR_TOKEN or CACT_OPERATOR_TOKEN_FILE "
                  "(docs/operations.md, \"Web surface and credentials\")")
#: On every guarded page and the login page: never cached, never framed, never sent on as a referrer.
PRIVATE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                      "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_COOKIE_CONTEXT = b"cact-operator-cookie-v1"



# ------------------------------------------------------------------------------------------------
# The token
# ------------------------------------------------------------------------------------------------

def _check_length(token: str, source: str) -> str | None:
    if len(token) < MIN_TOKEN_CHARS:
        return (f"{source} is shorter than {MIN_TOKEN_CHARS} characters: use a random one (python -c 'import "
                f"secrets; print(secrets.token_urlsafe(32))'); until then the operator pages answer 401")
    return None


def read_token_file(path: Path) -> tuple[str | None, str | None]:
    """``(token, None)``, or ``(None, one line saying what to change)``; the token is the file's first line.

    Opened without blocking and checked on the open descriptor, so a FIFO cannot hang a request and a file
    swapped between the check and the read is still the one checked."""
    name = f"CACT_OPERATOR_TOKEN_FILE {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror}): the operator pages answer 401 until it can"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{name} is not a regular file: the operator pages answer 401"
        if st.st_mode & 0o007:
            return None, (f"{name} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it; "
                          "until then the operator pages answer 401")
        if st.st_size > MAX_TOKEN_FILE_BYTES:
            return None, f"{name} is larger than {MAX_TOKEN_FILE_BYTES} bytes: it must hold the token only"
        raw = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
    finally:
        os.close(fd)
    try:
        lines = raw.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        return None, f"{name} is not UTF-8 text: the operator pages answer 401"
    token = lines[0].strip() if lines else ""
    if not token:
        return None, f"{name} is empty: the operator pages answer 401 until it holds the token"
    problem = _check_length(token, name)
    return (None, problem) if problem else (token, None)


class OperatorToken:
    """The operator token as configured right now; says once, in the log, why it cannot be used."""

    def __init__(self, value: str | None = None, path: Path | None = None) -> None:
        self._value = value or None
        self._path = path
        self._reported: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorToken:
        value = settings.operator_token.get_secret_value() if settings.operator_token else None
        return cls(value, settings.operator_token_file)

    @property
    def configured(self) -> bool:
        return self._value is not None or self._path is not None

    def current(self) -> str | None:
        """The token to compare with, or None (then every guarded page answers 401)."""
        if self._path is not None:
            token, problem = read_token_file(self._path)
        elif self._value is not None:
            token, problem = self._value, _check_length(self._value, "CACT_OPERATOR_TOKEN")
            token = None if problem else token
        else:
            return None
        if problem != self._reported:  # one line per change, not one per request
            if problem:
                log.warning("%s", problem)
            self._reported = problem
        return token

    def log_startup(self) -> None:
        """One line at start about the pages' credential; never the token."""
        if not self.configured:
            log.warning("the operator page and /attendance.json answer 401: %s", NOT_CONFIGURED)
            return
        if self._path is not None and self._value is not None:
            log.warning("both CACT_OPERATOR_TOKEN and CACT_OPERATOR_TOKEN_FILE are set: the file is used")
        if self.current() is not None:
            where = f"the token in {self._path}" if self._path is not None else "CACT_OPERATOR_TOKEN"
            log.info("the operator page and /attendance.json need %s", where)


# ------------------------------------------------------------------------------------------------
# Deciding
# ------------------------------------------------------------------------------------------------

class Access(Enum):
    GRANTED = "granted"
    NO_TOKEN = "no_token"  # the worker has no usable token: nobody gets in
    MISSING = "missing"  # no credential, or a cookie from before a rotation
    WRONG = "wrong"  # a Bearer token that is not the token


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def token_matches(presented: str, token: str) -> bool:
    """Constant-time, and over digests so not even the token's length shows in the timing."""
    return hmac.compare_digest(_digest(presented), _digest(token))


def cookie_value(token: str, *, expires: int) -> str:
    """What a logged-in browser holds: its expiry and an HMAC of it keyed by the token, so a copied cookie
    stops working at its expiry (the browser's Max-Age is only a request) and at the next rotation."""
    mac = hmac.new(token.encode("utf-8"), _COOKIE_CONTEXT + str(expires).encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def cookie_valid(cookie: str, token: str, *, now: float) -> bool:
    expires, _, _ = cookie.partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12) or int(expires) <= now:
        return False
    return hmac.compare_digest(_digest(cookie), _digest(cookie_value(token, expires=int(expires))))


def bearer(authorization: str | None) -> str | None:
    scheme, _, credential = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


def access(token: str | None, authorization: str | None, cookie: str | None, *, now: float | None = None) -> Access:
    if token is None:
        return Access.NO_TOKEN
    presented = bearer(authorization)
    if presented is not None:
        return Access.GRANTED if token_matches(presented, token) else Access.WRONG
    if cookie and cookie_valid(cookie, token, now=time.time() if now is None else now):
        return Access.GRANTED
    return Access.MISSING


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only, never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return DEFAULT_NEXT
    if any(ord(c) < 0x21 or c == "\x7f" for c in target):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else DEFAULT_NEXT


def session_cookie(token: str, *, secure: bool, now: float | None = None) -> str:
    expires = int(time.time() if now is None else now) + COOKIE_MAX_AGE_S
    return (f"{COOKIE_NAME}={cookie_value(token, expires=expires)}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; "
            f"SameSite=Strict{'; Secure' if secure else ''}")


def cleared_cookie(*, secure: bool) -> str:
    return f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{'; Secure' if secure else ''}"


@dataclass(frozen=True)
class Reply:
    """An answer, framework-free: app.py's pages turn it into a response."""

    status: int
    body: str = ""
    content_type: str = "text/html"
    headers: Mapping[str, str] = field(default_factory=dict)


def login_page(*, message: str = "", next_path: str = DEFAULT_NEXT, form: bool = True) -> str:
    page = LOGIN_PAGE.read_text(encoding="utf-8")
    return (page.replace("{{message}}", html.escape(message))
                .replace("{{message_hidden}}", "" if message else "hidden")
                .replace("{{form_hidden}}", "" if form else "hidden")
                .replace("{{next}}", html.escape(safe_next(next_path), quote=True)))


def refusal(outcome: Access, *, as_json: bool, next_path: str) -> Reply:
    """The 401 of a guarded page: JSON for programs, the login form for a browser."""
    headers = dict(PRIVATE_HEADERS)
    if outcome is Access.NO_TOKEN:
        message = NOT_CONFIGURED
    else:
        headers["WWW-Authenticate"] = 'Bearer realm="cact-operator"' + (
            ', error="invalid_token"' if outcome is Access.WRONG else "")
        message = ("wrong operator token" if outcome is Access.WRONG else
                   "operator token required: send Authorization: Bearer <token>, or log in at /login")
    if as_json:
        return Reply(401, json.dumps({"error": message}), "application/json", headers)
    shown = NOT_CONFIGURED if outcome is Access.NO_TOKEN else (
        "Token salah / wrong token" if outcome is Access.WRONG else "")
    return Reply(401, login_page(message=shown, next_path=next_path, form=outcome is not Access.NO_TOKEN),
                 headers=headers)


def login(token: str | None, presented: str, next_path: str | None, *, secure: bool, failures: Counter) -> Reply:
    """The login form's answer: a cookie and a redirect, or the form again with a 401 (counted in ``failures``,
    ``cact_web_login_failures_total`` of the worker's metrics, streams/metrics.py)."""
    if token is None:
        return refusal(Access.NO_TOKEN, as_json=False, next_path=safe_next(next_path))
    if not presented or not token_matches(presented, token):
        failures.labels(method="form").inc()
        return Reply(401, login_page(message="Token salah / wrong token", next_path=safe_next(next_path)),
                     headers=dict(PRIVATE_HEADERS))
    return Reply(303, headers={**PRIVATE_HEADERS, "Location": safe_next(next_path),
                               "Set-Cookie": session_cookie(token, secure=secure)})


def logout(*, secure: bool) -> Reply:
    return Reply(303, headers={**PRIVATE_HEADERS, "Location": "/login",
                               "Set-Cookie": cleared_cookie(secure=secure)})


# ------------------------------------------------------------------------------------------------
# Wiring to Faust's views (the aiohttp driver's requests and responses)
# ------------------------------------------------------------------------------------------------

Handler = Callable[[Any, Any], Awaitable[Any]]


def respond(view: Any, reply: Reply) -> Any:
    return view.text(reply.body, content_type=reply.content_type, status=reply.status, headers=dict(reply.headers))


def is_secure(request: Any) -> bool:
    """HTTPS here or at a proxy in front: then the cookie is marked Secure."""
    return bool(getattr(request, "secure", False)) or request.headers.get("X-Forwarded-Proto", "") == "https"


def guarded(token: OperatorToken, *, as_json: bool, failures: Counter) -> Callable[[Handler], Handler]:
    """Wrap a page handler so that only a request carrying the operator token reaches it; a wrong token is
    counted in ``failures`` (``cact_web_login_failures_total``)."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def page(view: Any, request: Any) -> Any:
            outcome = access(token.current(), request.headers.get("Authorization"), request.cookies.get(COOKIE_NAME))
            if outcome is Access.WRONG:
                failures.labels(method="bearer").inc()
            if outcome is not Access.GRANTED:
                return respond(view, refusal(outcome, as_json=as_json, next_path=request.path_qs))
            response = await handler(view, request)
            response.headers.update(PRIVATE_HEADERS)
            return response

        return page

    return wrap


def login_view(token: OperatorToken, *, failures: Counter) -> type[View]:
    """``/login``: GET shows the form, POST checks it (form fields ``token`` and ``next``)."""

    class LoginPage(View):
        async def get(self, request: Any) -> Any:
            current = token.current()
            return respond(self, Reply(200, login_page(next_path=request.query.get("next"), form=current is not None,
                                                       message="" if current is not None else NOT_CONFIGURED),
                                       headers=dict(PRIVATE_HEADERS)))

        async def post(self, request: Any) -> Any:
            form = await request.post()
            presented, next_path = form.get("token", ""), form.get("next")
            return respond(self, login(token.current(), presented.strip() if isinstance(presented, str) else "",
                                       next_path if isinstance(next_path, str) else None,
                                       secure=is_secure(request), failures=failures))

    return LoginPage


def logout_view() -> type[View]:
    """``/logout`` (POST): forget the browser's cookie."""

    class LogoutPage(View):
        async def post(self, request: Any) -> Any:
            return respond(self, logout(secure=is_secure(request)))

    return LogoutPage
