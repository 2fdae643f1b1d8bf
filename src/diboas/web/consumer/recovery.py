"""Where the emailed links lead: confirming an email address, choosing a new password; and
asking for those emails. Each link opens a page whose button does the work (a POST with a
CSRF token): mail scanners that fetch links must not use up a single-use token."""

from __future__ import annotations

from starlette.responses import Response

from diboas.identity import service
from diboas.identity.endpoints import client_of
from diboas.identity.schemas import PasswordResetIn, PasswordResetRequestIn, TokenIn
from diboas.kit.errors import DomainError
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import GUEST, OPEN, Page, WebRoutes

routes = WebRoutes()


def _token(page: Page) -> str:
    return (
        page.field("token") if page.form is not None else page.request.query_params.get("token", "")
    )


@routes.add("/app/verify-email", access=OPEN, methods=("GET", "POST"))
async def verify_email(page: Page) -> Response:
    token = _token(page)
    errors = FormErrors()
    if page.request.method == "POST":
        body, errors = validate(TokenIn, {"token": token})
        if body is not None:
            try:
                await page.db.run(
                    lambda s: service.verify_email(
                        s, token=body.token, client=client_of(page.request)
                    )
                )
            except DomainError as refusal:
                errors.add_domain_error(refusal)
            else:
                return page.render("consumer/verify_email.html", {"done": True, "token": ""})
        errors.setdefault("", "The link is invalid or has expired.")
    return page.render(
        "consumer/verify_email.html",
        {"done": False, "token": token, "errors": errors},
        status=errors.status_code if errors else 200,
    )


@routes.add("/app/forgot-password", access=GUEST, methods=("GET", "POST"))
async def forgot_password(page: Page) -> Response:
    values = {"email": page.field("email")}
    errors = FormErrors()
    sent = False
    if page.request.method == "POST":
        body, errors = validate(PasswordResetRequestIn, values)
        if body is not None:
            await page.db.run(
                lambda s: service.request_password_reset(
                    s, page.settings, email=str(body.email), client=client_of(page.request)
                )
            )
            sent = True  # the same answer whether the account exists or not
    return page.render(
        "consumer/forgot_password.html",
        {"values": values, "errors": errors, "sent": sent},
        status=errors.status_code if errors else 200,
    )


@routes.add("/app/reset-password", access=OPEN, methods=("GET", "POST"))
async def reset_password(page: Page) -> Response:
    token = _token(page)
    errors = FormErrors()
    if page.request.method == "POST":
        body, errors = validate(
            PasswordResetIn, {"token": token, "new_password": page.field("new_password")}
        )
        if body is not None:
            try:
                await page.db.run(
                    lambda s: service.reset_password(
                        s,
                        page.settings,
                        token=body.token,
                        new_password=body.new_password,
                        client=client_of(page.request),
                    )
                )
            except DomainError as refusal:
                errors.add_domain_error(refusal)
                if "requirements" in refusal.details:
                    errors["new_password"] = errors.pop("")
            else:
                return page.redirect("/app/login?password_reset=1")
        if "token" in errors:
            errors[""] = "The link is invalid or has expired."
    return page.render(
        "consumer/reset_password.html",
        {"token": token, "errors": errors},
        status=errors.status_code if errors else 200,
    )
