"""Sign-up, sign-in and sign-out in the browser, through identity's own services.

A web sign-in is an identity session like any other (``identity.service.login``): the same
lockout, the same audit rows, listed and revocable from any device. The browser keeps only a
signed cookie naming the session; the refresh token the service issues is not used by the
web and is never sent to the browser.
"""

from __future__ import annotations

from starlette.responses import Response

from diboas.identity import service, tokens
from diboas.identity.endpoints import client_of
from diboas.identity.schemas import LoginIn, RegisterIn
from diboas.kit.errors import DomainError
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import GUEST, Page, WebRoutes, next_path
from diboas.web.security import SESSION_COOKIE

routes = WebRoutes()


async def _sign_in(page: Page, email: str, password: str) -> FormErrors:
    """Open an identity session and hand the browser its cookie; errors if refused."""
    request = page.request
    outcome = await page.db.run(
        lambda s: service.login(
            s, page.settings, email=email, password=password, client=client_of(request)
        )
    )
    errors = FormErrors()
    if outcome.refusal is not None:
        errors.add_domain_error(outcome.refusal)
        return errors
    assert outcome.tokens is not None  # noqa: S101 - a LoginOutcome holds one or the other
    # The access token names the user; it was signed a moment ago by this process.
    claims = tokens.verify_access_token(page.settings, outcome.tokens.access_token)
    page.set_cookies[SESSION_COOKIE] = page.state.keys.sign_session(
        outcome.tokens.session_id, claims.user_id
    )
    return errors


@routes.add("/app/signup", access=GUEST, methods=("GET", "POST"))
async def signup(page: Page) -> Response:
    values = {"full_name": "", "email": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {"full_name": page.field("full_name"), "email": page.field("email")}
        body, errors = validate(RegisterIn, {**values, "password": page.field("password")})
        if body is not None:
            try:
                await page.db.run(
                    lambda s: service.register(
                        s,
                        page.settings,
                        email=str(body.email),
                        password=body.password,
                        full_name=body.full_name,
                        client=client_of(page.request),
                    )
                )
            except DomainError as refused:
                errors.add_domain_error(refused)
                if "requirements" in refused.details:
                    errors["password"] = errors.pop("")
            else:
                errors = await _sign_in(page, str(body.email), body.password)
                if not errors:
                    return page.redirect("/app/kyc?welcome=1")
    return page.render(
        "consumer/signup.html", {"values": values, "errors": errors}, status=_status(errors)
    )


@routes.add("/app/login", access=GUEST, methods=("GET", "POST"))
async def login(page: Page) -> Response:
    values = {"email": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {"email": page.field("email")}
        body, errors = validate(LoginIn, {**values, "password": page.field("password")})
        if body is not None:
            errors = await _sign_in(page, str(body.email), body.password)
            if not errors:
                return page.redirect(next_path(page.request))
    return page.render(
        "consumer/login.html",
        {
            "values": values,
            "errors": errors,
            "next": next_path(page.request),
            "request_signed_out": page.request.query_params.get("signed_out") == "1",
            "password_reset": page.request.query_params.get("password_reset") == "1",
        },
        status=_status(errors),
    )


@routes.add("/app/logout", access="sessions:manage", methods=("POST",))
async def logout(page: Page) -> Response:
    user, session_id = page.me(), page.my_session()
    await page.db.run(
        lambda s: service.logout(
            s, user=user, session_id=session_id, client=client_of(page.request)
        )
    )
    page.set_cookies[SESSION_COOKIE] = None
    return page.redirect("/app/login?signed_out=1")


def _status(errors: FormErrors) -> int:
    # A refused form is a 4xx like its API counterpart (and says so to tests and tools).
    return errors.status_code if errors else 200
