"""The operator token's rules (streams/web_auth.py), without a server: what counts as the token, what a browser
keeps, what a refusal says, and that the worker's app serves only the pages it means to, each behind the token
unless it carries no personal or operational data."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cact.worker import build_app
from schemas.settings import Settings
from streams import web_auth as wa
from streams.metrics import WorkerMetrics

TOKEN = "s3cret-operator-token-0123456789"
OTHER = "another-operator-token-9876543210"


METRICS = WorkerMetrics(CollectorRegistry())
FAILURES = METRICS.login_failures


def failures(method: str) -> float:
    return METRICS.registry.get_sample_value("cact_web_login_failures_total", {"method": method}) or 0.0


def token_file(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


# ---- the token file ------------------------------------------------------------------------------

def test_the_token_is_the_files_first_line_without_its_newline(tmp_path: Path) -> None:
    assert wa.read_token_file(token_file(tmp_path / "t", TOKEN + "\n")) == (TOKEN, None)
    assert wa.read_token_file(token_file(tmp_path / "g", f"  {TOKEN}  \n\n", 0o640)) == (TOKEN, None)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666])
def test_a_token_file_other_users_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    token, problem = wa.read_token_file(token_file(tmp_path / "t", TOKEN, mode))
    assert token is None
    assert problem is not None and "chmod 600" in problem and f"{mode:04o}" in problem and TOKEN not in problem


def test_unusable_token_files_say_what_to_change(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing": "cannot be read",
        token_file(tmp_path / "empty", "\n"): "is empty",
        token_file(tmp_path / "short", "abc123\n"): "shorter than 16",
        token_file(tmp_path / "big", "x" * 5000): "larger than",
        tmp_path: "not a regular file",
    }
    os.mkfifo(tmp_path / "fifo", 0o600)  # opened without blocking: a FIFO must not hang a request
    cases[tmp_path / "fifo"] = "not a regular file"
    for path, expected in cases.items():
        token, problem = wa.read_token_file(path)
        assert token is None and problem is not None and expected in problem, (path, problem)
        assert problem.startswith(f"CACT_OPERATOR_TOKEN_FILE {path} ")


def test_a_rotated_file_is_used_at_the_next_check_and_problems_are_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = token_file(tmp_path / "token", TOKEN)
    source = wa.OperatorToken(path=path)
    assert source.current() == TOKEN
    replacement = token_file(tmp_path / "token.new", OTHER)
    replacement.replace(path)  # the rotation procedure: write aside, rename over
    assert source.current() == OTHER
    caplog.set_level(logging.INFO, logger="cact.web")
    path.chmod(0o644)
    assert [source.current() for _ in range(3)] == [None, None, None]
    assert [r.getMessage() for r in caplog.records].count(wa.read_token_file(path)[1]) == 1
    path.chmod(0o600)
    assert source.current() == OTHER
    assert all(TOKEN not in r.getMessage() and OTHER not in r.getMessage() for r in caplog.records)


def test_the_file_wins_over_the_variable_and_a_short_variable_is_refused(tmp_path: Path) -> None:
    assert wa.OperatorToken(TOKEN, token_file(tmp_path / "t", OTHER)).current() == OTHER
    assert wa.OperatorToken(TOKEN).current() == TOKEN
    assert wa.OperatorToken("short").current() is None
    assert wa.OperatorToken().current() is None and not wa.OperatorToken().configured
    settings = Settings(operator_token=TOKEN)
    assert wa.OperatorToken.from_settings(settings).current() == TOKEN


def test_no_token_is_said_once_at_start_naming_both_variables(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cact.web")
    wa.OperatorToken().log_startup()
    wa.OperatorToken(TOKEN).log_startup()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "CACT_OPERATOR_TOKEN_FILE" in m]) == 1
    assert all(TOKEN not in m for m in messages)


# ---- deciding ------------------------------------------------------------------------------------

def test_access_by_bearer_token_or_by_the_login_cookie() -> None:
    later = int(time.time()) + 3600
    cookie = wa.cookie_value(TOKEN, expires=later)
    assert wa.access(TOKEN, f"Bearer {TOKEN}", None) is wa.Access.GRANTED
    assert wa.access(TOKEN, f"bearer  {TOKEN} ", None) is wa.Access.GRANTED
    assert wa.access(TOKEN, f"Bearer {OTHER}", None) is wa.Access.WRONG
    assert wa.access(TOKEN, f"Bearer {OTHER}", cookie) is wa.Access.WRONG  # a wrong header is not excused
    assert wa.access(TOKEN, None, cookie) is wa.Access.GRANTED
    assert wa.access(TOKEN, None, wa.cookie_value(OTHER, expires=later)) is wa.Access.MISSING  # before a rotation
    assert wa.access(TOKEN, None, cookie, now=later) is wa.Access.MISSING  # expired, whatever the browser keeps
    assert wa.access(TOKEN, None, cookie, now=later - 1) is wa.Access.GRANTED
    forged = f"{later + 10**6}.{cookie.partition('.')[2]}"  # a later expiry does not carry the old MAC
    assert wa.access(TOKEN, None, forged) is wa.Access.MISSING
    assert wa.access(TOKEN, None, TOKEN) is wa.Access.MISSING  # the token itself is not a cookie
    assert wa.access(TOKEN, f"Basic {TOKEN}", None) is wa.Access.MISSING
    assert wa.access(TOKEN, "Bearer", None) is wa.Access.MISSING
    assert wa.access(TOKEN, None, None) is wa.Access.MISSING
    assert wa.access(None, f"Bearer {TOKEN}", cookie) is wa.Access.NO_TOKEN


def test_the_cookie_reveals_nothing_and_changes_with_the_token() -> None:
    now = 1_800_000_000
    value = wa.cookie_value(TOKEN, expires=now + wa.COOKIE_MAX_AGE_S)
    assert TOKEN not in value and len(value.partition(".")[2]) == 64
    assert value != wa.cookie_value(OTHER, expires=now + wa.COOKIE_MAX_AGE_S)
    header = wa.session_cookie(TOKEN, secure=False, now=now)
    assert header.startswith(f"{wa.COOKIE_NAME}={value};")
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header and "Secure" not in header
    assert TOKEN not in header
    assert wa.session_cookie(TOKEN, secure=True).endswith("; Secure")
    assert "Max-Age=0" in wa.cleared_cookie(secure=False)


@pytest.mark.parametrize(("target", "expected"), [
    ("/operator", "/operator"), ("/attendance.json?x=1", "/attendance.json?x=1"), (None, "/operator"),
    ("", "/operator"), ("//evil.example/x", "/operator"), ("https://evil.example/", "/operator"),
    ("/\\evil.example", "/operator"), ("operator", "/operator"), ("/op\r\nSet-Cookie: x=1", "/operator"),
    ("/ok path", "/operator"),
])
def test_after_login_only_a_path_on_this_server(target: str | None, expected: str) -> None:
    assert wa.safe_next(target) == expected


def test_refusals_are_401_and_say_what_to_do() -> None:
    none = wa.refusal(wa.Access.NO_TOKEN, as_json=True, next_path="/attendance.json")
    assert none.status == 401 and "CACT_OPERATOR_TOKEN or CACT_OPERATOR_TOKEN_FILE" in json.loads(none.body)["error"]
    missing = wa.refusal(wa.Access.MISSING, as_json=True, next_path="/attendance.json")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="cact-operator"'
    wrong = wa.refusal(wa.Access.WRONG, as_json=True, next_path="/x")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    page = wa.refusal(wa.Access.MISSING, as_json=False, next_path="/operator")
    assert page.status == 401 and page.content_type == "text/html"
    assert 'action="/login"' in page.body and 'name="next" value="/operator"' in page.body
    assert page.headers["Cache-Control"] == "no-store"
    closed = wa.refusal(wa.Access.NO_TOKEN, as_json=False, next_path="/operator")
    assert "CACT_OPERATOR_TOKEN_FILE" in closed.body and 'data-testid="login-form" hidden' in closed.body


def test_the_login_page_escapes_what_it_echoes() -> None:
    body = wa.login_page(next_path='/operator"><script>alert(1)</script>')
    assert "<script>alert" not in body and "&quot;&gt;&lt;script&gt;" in body


def test_login_sets_the_cookie_or_counts_a_failure() -> None:
    ok = wa.login(TOKEN, TOKEN, "/operator", secure=False, failures=FAILURES)
    assert ok.status == 303 and ok.headers["Location"] == "/operator"
    assert ok.headers["Set-Cookie"] == wa.session_cookie(TOKEN, secure=False)
    assert TOKEN not in ok.body and TOKEN not in "".join(ok.headers.values())
    elsewhere = wa.login(TOKEN, TOKEN, "https://evil.example/", secure=True, failures=FAILURES)
    assert elsewhere.headers["Location"] == "/operator"
    before = failures("form")
    for presented in (OTHER, "", TOKEN + "x"):
        bad = wa.login(TOKEN, presented, "/operator", secure=False, failures=FAILURES)
        assert bad.status == 401 and "Set-Cookie" not in bad.headers and "wrong token" in bad.body
    assert failures("form") == before + 3
    closed = wa.login(None, TOKEN, "/operator", secure=False, failures=FAILURES)
    assert closed.status == 401 and "CACT_OPERATOR_TOKEN" in closed.body and "Set-Cookie" not in closed.headers
    out = wa.logout(secure=False)
    assert out.status == 303 and "Max-Age=0" in out.headers["Set-Cookie"]


# ---- wired to a page -----------------------------------------------------------------------------

class FakeResponse:
    def __init__(self, body: str, status: int = 200, headers: dict[str, str] | None = None,
                 content_type: str | None = None) -> None:
        self.body, self.status, self.headers, self.content_type = body, status, dict(headers or {}), content_type


class FakeView:
    def text(self, body: str, *, content_type: str, status: int, headers: dict[str, str]) -> FakeResponse:
        return FakeResponse(body, status, headers, content_type)


class FakeRequest:
    def __init__(self, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> None:
        self.headers, self.cookies, self.path = headers or {}, cookies or {}, "/operator/absent"
        self.path_qs = "/operator/absent?session=S1"  # aiohttp's path with its query string


def test_a_guarded_page_runs_only_with_the_token() -> None:
    calls: list[Any] = []

    @wa.guarded(wa.OperatorToken(TOKEN), as_json=False, failures=FAILURES)
    async def page(view: Any, request: Any) -> FakeResponse:
        calls.append(request)
        return FakeResponse("the numbers")

    def get(request: FakeRequest) -> FakeResponse:
        return asyncio.run(page(FakeView(), request))

    before = failures("bearer")
    refused = get(FakeRequest())
    assert refused.status == 401
    assert 'name="next" value="/operator/absent?session=S1"' in refused.body  # back to the same list after login
    assert get(FakeRequest({"Authorization": f"Bearer {OTHER}"})).status == 401
    assert failures("bearer") == before + 1
    assert calls == []
    granted = get(FakeRequest({"Authorization": f"Bearer {TOKEN}"}))
    assert (granted.status, granted.body, granted.headers["Cache-Control"]) == (200, "the numbers", "no-store")
    cookie = wa.cookie_value(TOKEN, expires=int(time.time()) + 60)
    assert get(FakeRequest(cookies={wa.COOKIE_NAME: cookie})).body == "the numbers"
    assert len(calls) == 2
    assert page.__name__ == "page"  # Faust names the view after the handler


# ---- the worker's app ----------------------------------------------------------------------------

def app_settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'results.db'}", data_dir=tmp_path / "worker",
                    operator_token=TOKEN, **changes)


def test_the_worker_serves_only_its_own_pages_and_binds_where_configured(tmp_path: Path) -> None:
    app = build_app(app_settings(tmp_path, worker_web_host="127.0.0.2", worker_web_port=7123))
    assert (app.conf.web_bind, app.conf.web_port) == ("127.0.0.2", 7123)
    app.web.init_server()  # what the worker does at start: Faust's enabled blueprints, then the app's pages
    paths = {r.resource.canonical for r in app.web.web_app.router.routes() if r.resource is not None}
    # a new page must be added here on purpose, and guarded if it shows anything about a person or a session
    assert paths == {"/", "/login", "/logout", "/operator", "/attendance.json", "/metrics",
                     "/operator/absent", "/absent.json", "/held-back.json", "/operator/reports", "/reports.json",
                     "/reports/file", "/healthz", "/readyz"}


@pytest.mark.parametrize("variable", ["APP_WEB_TABLES_ENABLED", "APP_WEB_ROUTER_ENABLED", "APP_WEB_STATS_ENABLED",
                                      "WEB_BIND"])
def test_fausts_own_variables_cannot_reopen_its_pages_or_move_the_listener(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "0.0.0.0" if variable == "WEB_BIND" else "true")
    app = build_app(app_settings(tmp_path, worker_web_host="127.0.0.2"))
    assert (app.conf.web_bind, app.conf.web_tables_enabled, app.conf.web_router_enabled,
            app.conf.web_stats_enabled) == ("127.0.0.2", False, False, False)
