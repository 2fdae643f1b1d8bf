"""Web routes and what each one requires, checked before its handler runs.

Like the API (``identity.dependencies``), every web route declares who may reach it:
``PUBLIC`` (cacheable pages that never look at who is asking), ``GUEST`` (the sign-in and
sign-up forms: a signed-in visitor is sent to the app), ``OPEN`` (the pages emailed links
lead to: anyone, signed in or not), or a permission of ``identity.roles`` (signed in, with
that permission). A test walks the app's web routes
and fails on one without a declaration. Every POST must carry a valid CSRF token or it is
refused with 403 before the handler sees it.

A route may add a ``guard``: its own check (the business pages' role in the organisation and
IP allow-list), run after the sign-in check and before the form is read, so a body is
received only from someone allowed to send it. Forms are URL-encoded or multipart without
files; a route that takes a file names its ``form_reader`` (the payout upload reads one
bounded file with the API's own limits) — CSRF is checked on what it read, as for any form.

Web routes are plain Starlette routes, not FastAPI ``APIRoute``s: they are pages, not part
of the API's schema, and they are kept out of the API's route walker on purpose.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from jinja2 import Environment
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from diboas.api.deps import Database
from diboas.identity import repository as users
from diboas.identity.repository import User
from diboas.identity.roles import has_permission
from diboas.kit.errors import DomainError
from diboas.settings import Settings
from diboas.web.ratelimit import CredentialLimiter, Refusal
from diboas.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    CookiePolicy,
    WebKeys,
    add_page_headers,
    new_csrf_nonce,
)

PUBLIC = "public"
GUEST = "guest"
OPEN = "open"
LOGIN_PATH = "/app/login"
HOME_PATH = "/app"
# Where a sign-in may return to: the consumer app and the business app.
_NEXT_PREFIXES = ("/app", "/business")
_FORM_LIMITS = {"max_files": 0, "max_fields": 50, "max_part_size": 64 * 1024}

log = structlog.get_logger(__name__)


@dataclass
class WebState:
    """What the web needs from the app, built once: templates, keys, settings."""

    env: Environment
    keys: WebKeys
    settings: Settings
    limiter: CredentialLimiter


@dataclass
class Page:
    """One request to a web route: who asks, the form, and how to answer."""

    request: Request
    state: WebState
    db: Database
    cookies: CookiePolicy
    user: User | None = None
    session_id: uuid.UUID | None = None
    form: FormData | None = None
    csrf_nonce: str = ""
    new_nonce: bool = False
    set_cookies: dict[str, str | None] = field(default_factory=dict)
    # What the route's guard established (the business pages keep the organisation's
    # Principal here); None on routes without a guard.
    grant: object = None

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def csrf_token(self) -> str:
        # Public pages have no nonce and carry no forms.
        if not self.csrf_nonce:
            return ""
        return self.state.keys.csrf_token(self.csrf_nonce, self.session_id)

    def me(self) -> User:
        """The signed-in user (the route's declared access guarantees one)."""
        if self.user is None:
            raise RuntimeError("this route requires a signed-in user")
        return self.user

    def my_session(self) -> uuid.UUID:
        """The signed-in browser's identity session."""
        if self.session_id is None:
            raise RuntimeError("this route requires a signed-in user")
        return self.session_id

    def field(self, name: str) -> str:
        """A form field's text ('' when absent)."""
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        """Every text value of a repeated form field (checkboxes)."""
        values = self.form.getlist(name) if self.form is not None else []
        return [v for v in values if isinstance(v, str)]

    def render(
        self, template: str, context: dict[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """A page, with the signed-in user and a CSRF token available to the template."""
        values = {
            "user": self.user,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.csrf_token,
            "path": self.request.url.path,
            "env_name": self.settings.env,
        }
        values.update(context or {})
        html = self.state.env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status)

    def redirect(self, url: str) -> RedirectResponse:
        """See other (303): after a POST the browser follows with a GET."""
        return RedirectResponse(url, status_code=303)


Handler = Callable[[Page], Awaitable[Response]]
# A route's own check before its form is read: a refusal page, or None to go on.
Guard = Callable[[Page], Awaitable[Response | None]]
# Reads a route's form instead of the default (URL-encoded or multipart without files).
FormReader = Callable[[Request, Settings], Awaitable[FormData]]


class NamedRoute(Route):
    """A Starlette route that names itself in the request scope, so the request log and
    the duration histogram label it by its template (``/app/transactions/{transaction_id}``)
    as they do API routes, rather than as "unmatched"."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE:
            child["route"] = self
        return match, child


class WebRoute(NamedRoute):
    """A web route that records what it requires."""

    access: str
    guard: Guard | None = None


def _safe_next(target: str | None) -> str:
    # Only a path inside the app: anything else (another host, //host, a scheme) would make
    # the login form an open redirect.
    if (
        target
        and target.startswith(_NEXT_PREFIXES)
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return HOME_PATH


def login_url(next_path: str | None = None) -> str:
    """The sign-in page, returning to ``next_path`` afterwards."""
    if not next_path or next_path == HOME_PATH:
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(_safe_next(next_path), safe='/')}"


def next_path(request: Request) -> str:
    """Where to go after signing in (a safe, local path)."""
    return _safe_next(request.query_params.get("next"))


async def _signed_in(page: Page) -> None:
    opened = page.state.keys.open_session(page.cookies.read(page.request, SESSION_COOKIE))
    if opened is None:
        return
    session_id, user_id = opened
    user = await page.db.read_one(lambda s: users.user_of_active_session(s, session_id, user_id))
    if user is not None and user.status == "active":
        page.user, page.session_id = user, session_id
        page.request.state.user_id = str(user.id)
        structlog.contextvars.bind_contextvars(user_id=str(user.id))


def _error_page(page: Page, status: int, title: str, message: str) -> Response:
    return page.render("error.html", {"title": title, "message": message}, status=status)


@dataclass(frozen=True, slots=True)
class _Checks:
    """What a route requires before its handler runs."""

    access: str
    guard: Guard | None = None
    form_reader: FormReader | None = None


def _wrap(checks: _Checks, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    access = checks.access

    async def endpoint(request: Request) -> Response:
        app = request.app
        state: WebState = app.state.web
        page = Page(
            request=request,
            state=state,
            db=Database(app.state.sessions, state.settings, app.state.engine),
            cookies=CookiePolicy.of(request, state.settings),
        )
        if access == PUBLIC:
            response = await handler(page)
            add_page_headers(response, secure=page.cookies.secure, private=False)
            return response
        await _signed_in(page)
        nonce = page.cookies.read(request, CSRF_COOKIE)
        page.csrf_nonce, page.new_nonce = (nonce, False) if nonce else (new_csrf_nonce(), True)
        try:
            response = await _checked(checks, page, handler)
        finally:
            if checks.form_reader is not None and page.form is not None:
                await page.form.close()  # an uploaded file's buffer
        if page.new_nonce:
            page.cookies.set(response, CSRF_COOKIE, page.csrf_nonce)
        for name, value in page.set_cookies.items():
            if value is None:
                page.cookies.clear(response, name)
            else:
                page.cookies.set(response, name, value)
        add_page_headers(response, secure=page.cookies.secure, private=True)
        return response

    return endpoint


async def _checked(checks: _Checks, page: Page, handler: Handler) -> Response:
    refused = await _refusal(checks, page)
    if refused is not None:
        return refused
    try:
        return await handler(page)
    except DomainError as error:
        # A refusal a handler did not turn into a form error: shown as a page, never a 500.
        return _error_page(page, error.status_code, "That did not work", error.message)


async def _refusal(checks: _Checks, page: Page) -> Response | None:
    """Why the request may not reach its handler (a redirect or an error page), if it may not."""
    request, access = page.request, checks.access
    if access == GUEST and page.user is not None and request.method == "GET":
        return page.redirect(HOME_PATH)
    if access not in (GUEST, OPEN, PUBLIC):
        denied = _denied(access, page)
        if denied is not None:
            return denied
    if checks.guard is not None:
        guarded = await checks.guard(page)
        if guarded is not None:
            return guarded
    if request.method != "POST":
        return None
    if access in (GUEST, OPEN):
        throttled = await _throttled(page)
        if throttled is not None:
            return throttled
    return await _forged(page, checks.form_reader)


def _denied(access: str, page: Page) -> Response | None:
    if page.user is None:
        return page.redirect(login_url(page.request.url.path))
    if not has_permission(page.user.role, access):
        return _error_page(page, 403, "Not available", "Your account cannot use this page.")
    return None


async def _throttled(page: Page) -> Response | None:
    client = page.request.client
    try:
        await page.state.limiter.check(client.host if client else "unknown")
    except Refusal as refusal:
        response = _error_page(
            page,
            refusal.status_code,
            "Please wait a moment",
            "There have been too many attempts from your network. "
            f"Try again in {refusal.retry_after} seconds.",
        )
        response.headers["Retry-After"] = str(refusal.retry_after)
        return response
    return None


async def _forged(page: Page, form_reader: FormReader | None) -> Response | None:
    """403 unless the form carries the CSRF token of this browser's nonce and session."""
    if form_reader is None:
        page.form = await page.request.form(**_FORM_LIMITS)
    else:
        try:
            page.form = await form_reader(page.request, page.settings)
        except DomainError as error:  # too large, or not a form: nothing was done
            return _error_page(page, error.status_code, "The upload was refused", error.message)
    if not page.new_nonce and page.state.keys.csrf_valid(
        page.csrf_nonce, page.session_id, page.form.get(CSRF_FIELD)
    ):
        return None
    log.info("web.csrf_refused", path=page.request.url.path)
    return _error_page(
        page,
        403,
        "This form has expired",
        "For your safety the form was not sent. Go back, reload the page and try again.",
    )


class WebRoutes:
    """A collection of web routes, each with its declared access."""

    def __init__(self) -> None:
        self.routes: list[WebRoute] = []

    def add(
        self,
        path: str,
        *,
        access: str,
        methods: Iterable[str] = ("GET",),
        guard: Guard | None = None,
        form_reader: FormReader | None = None,
    ) -> Callable[[Handler], Handler]:
        checks = _Checks(access, guard, form_reader)

        def register(handler: Handler) -> Handler:
            route = WebRoute(
                path, _wrap(checks, handler), methods=list(methods), name=handler.__name__
            )
            route.access = access
            route.guard = guard
            self.routes.append(route)
            return handler

        return register
