"""Identity verification (KYC) and settings: linked bank accounts, password, sessions."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from diboas.banking import service as banking
from diboas.banking.schemas import BankAccountIn
from diboas.banking.service import bank_accounts
from diboas.compliance import audit, kyc
from diboas.compliance.schemas import KycSubmissionIn
from diboas.identity import service as identity
from diboas.identity.endpoints import client_of
from diboas.identity.schemas import PasswordChangeIn
from diboas.kit.errors import DomainError, NotFoundError
from diboas.providers.kyc import KycApplicant, KycProvider, kyc_provider
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes
from diboas.web.security import SESSION_COOKIE

routes = WebRoutes()

DOCUMENT_TYPES = (
    ("passport", "Passport"),
    ("national_id", "National identity card"),
    ("drivers_license", "Driver's license"),
)
KYC_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "country",
    "address",
    "document_type",
    "document_number",
)


def _kyc_provider(page: Page) -> KycProvider:
    # The app's own KYC provider (tests hand in local counterparts), as the API uses.
    chosen: KycProvider | None = page.request.app.state.services.get("kyc")
    return chosen or kyc_provider(page.settings)


@routes.add("/app/kyc", access="kyc:submit", methods=("GET", "POST"))
async def verify_identity(page: Page) -> Response:
    user = page.me()
    values: dict[str, str] = dict.fromkeys(KYC_FIELDS, "")
    values["country"], values["document_type"] = "US", "passport"
    errors = FormErrors()
    decided: kyc.Submission | None = None
    if page.request.method == "POST":
        values = {name: page.field(name) for name in KYC_FIELDS}
        body, errors = validate(KycSubmissionIn, values)
        if body is not None:
            try:
                decided = await _submit(page, body)
            except DomainError as refusal:
                errors.add_domain_error(refusal)
    if decided is None:
        submissions = await page.db.run(lambda s: kyc.submissions_of(s, user.id, limit=5))
    else:
        submissions = [decided]
    return page.render(
        "consumer/kyc.html",
        {
            "values": values,
            "errors": errors,
            "documents": DOCUMENT_TYPES,
            "submissions": submissions,
            "decided": decided,
            "welcome": page.request.query_params.get("welcome") == "1",
        },
        status=errors.status_code if errors else 200,
    )


async def _submit(page: Page, body: KycSubmissionIn) -> kyc.Submission:
    # The API's three steps: may this user submit, the provider's decision outside any
    # transaction, then the decision recorded (and the tier raised) in one transaction.
    user = page.me()
    await page.db.run(lambda s: kyc.ensure_can_submit(s, user.id))
    provider = _kyc_provider(page)
    applicant = KycApplicant(
        first_name=body.first_name,
        last_name=body.last_name,
        date_of_birth=body.date_of_birth,
        country=body.country,
        address=body.address,
        document_type=body.document_type,
        document_number=body.document_number,
    )
    decision = await provider.submit(applicant)
    return await page.db.run(
        lambda s: kyc.record_decision(
            s,
            user_id=user.id,
            provider=provider.name,
            applicant=applicant,
            decision=decision,
            context=audit.request_context(page.request, user),
        )
    )


async def _settings_page(page: Page, *, status: int = 200, **forms: Any) -> Response:
    user = page.me()

    async def read(session: Any) -> tuple[list[Any], list[Any]]:
        accounts = await bank_accounts.list_for(session, user.id)
        return accounts, await identity.sessions_of(session, user)

    accounts, sessions = await page.db.run(read)
    context: dict[str, Any] = {
        "accounts": [banking.bank_account_out(a) for a in accounts],
        "sessions": sessions,
        "current_session": page.session_id,
        "bank_values": {"holder_name": user.full_name, "bank_name": "", "routing_number": ""},
        "bank_errors": FormErrors(),
        "password_errors": FormErrors(),
        "notice": page.request.query_params.get("done", ""),
    }
    context.update(forms)
    return page.render("consumer/settings.html", context, status=status)


@routes.add("/app/settings", access="profile:read")
async def settings_page(page: Page) -> Response:
    return await _settings_page(page)


@routes.add("/app/settings/bank-accounts", access="bank_accounts:manage", methods=("POST",))
async def link_bank_account(page: Page) -> Response:
    user = page.me()
    values = {k: page.field(k) for k in ("holder_name", "bank_name", "routing_number")}
    body, errors = validate(
        BankAccountIn, {**values, "account_number": page.field("account_number")}
    )
    if body is not None:
        context = audit.request_context(page.request, user)
        try:
            await page.db.run(
                lambda s: bank_accounts.link(
                    s, page.settings, user_id=user.id, request=body, context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect("/app/settings?done=bank_linked")
    return await _settings_page(
        page, status=errors.status_code, bank_values=values, bank_errors=errors
    )


@routes.add(
    "/app/settings/bank-accounts/{bank_account_id}/remove",
    access="bank_accounts:manage",
    methods=("POST",),
)
async def remove_bank_account(page: Page) -> Response:
    user = page.me()
    bank_account_id = _uuid(page, "bank_account_id")
    context = audit.request_context(page.request, user)
    await page.db.run(
        lambda s: bank_accounts.remove(
            s, user_id=user.id, bank_account_id=bank_account_id, context=context
        )
    )
    return page.redirect("/app/settings?done=bank_removed")


@routes.add("/app/settings/password", access="profile:write", methods=("POST",))
async def change_password(page: Page) -> Response:
    user, session_id = page.me(), page.my_session()
    body, errors = validate(
        PasswordChangeIn,
        {
            "current_password": page.field("current_password"),
            "new_password": page.field("new_password"),
        },
    )
    if body is not None:
        try:
            await page.db.run(
                lambda s: identity.change_password(
                    s,
                    page.settings,
                    user=user,
                    current=body.current_password,
                    new=body.new_password,
                    keep_session=session_id,
                    client=client_of(page.request),
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
            if isinstance(refusal, identity.InvalidCredentialsError):
                errors["current_password"] = errors.pop("")
            elif "" in errors:
                errors["new_password"] = errors.pop("")
        else:
            return page.redirect("/app/settings?done=password_changed")
    return await _settings_page(page, status=errors.status_code, password_errors=errors)


@routes.add("/app/settings/email-verification", access="profile:read", methods=("POST",))
async def resend_verification(page: Page) -> Response:
    user = page.me()
    await page.db.run(lambda s: identity.send_verification_email(s, page.settings, user))
    return page.redirect("/app/settings?done=verification_sent")


@routes.add(
    "/app/settings/sessions/{session_id}/revoke", access="sessions:manage", methods=("POST",)
)
async def revoke_session(page: Page) -> Response:
    user = page.me()
    session_id = _uuid(page, "session_id")
    await page.db.run(
        lambda s: identity.revoke_session(
            s, user=user, session_id=session_id, client=client_of(page.request)
        )
    )
    if session_id == page.session_id:
        page.set_cookies[SESSION_COOKIE] = None
        return page.redirect("/app/login?signed_out=1")
    return page.redirect("/app/settings?done=session_revoked")


def _uuid(page: Page, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(page.request.path_params[name])
    except ValueError:
        raise NotFoundError("no such item") from None
