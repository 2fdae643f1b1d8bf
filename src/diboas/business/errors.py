"""The business package's refusals (each renders in the one error format)."""

from __future__ import annotations

from diboas.kit.errors import ConflictError, DomainError, NotFoundError


class OrganisationNotFoundError(NotFoundError):
    """No such organisation, or the caller is not in it (another organisation's is 404)."""

    code = "organisation_not_found"


class MemberNotFoundError(NotFoundError):
    """No such member in this organisation."""

    code = "member_not_found"


class UserNotFoundError(NotFoundError):
    """No active diBoaS user has this email address."""

    code = "user_not_found"


class AlreadyMemberError(ConflictError):
    """The user is in the organisation already."""

    code = "already_member"


class LastAdminError(ConflictError):
    """The change would leave the organisation without an admin."""

    code = "last_admin"


class InvalidApiKeyError(DomainError):
    """An API key that is unknown, malformed, wrong or revoked."""

    status_code = 401
    code = "invalid_api_key"


class ApiKeyNotFoundError(NotFoundError):
    """No such API key in this organisation."""

    code = "api_key_not_found"


class IpNotAllowedError(DomainError):
    """The request comes from outside the organisation's IP allow-list."""

    status_code = 403
    code = "ip_not_allowed"


class OrganisationRoleError(DomainError):
    """The caller's role in the organisation does not allow this."""

    status_code = 403
    code = "organisation_role_required"


class ScopeError(DomainError):
    """The API key lacks the scope this needs."""

    status_code = 403
    code = "insufficient_scope"


class ApiKeyNotAcceptedError(DomainError):
    """Only a signed-in person (not an API key) may do this."""

    status_code = 403
    code = "user_required"


class AllowlistEntryNotFoundError(NotFoundError):
    """No such allow-list entry in this organisation."""

    code = "allowlist_entry_not_found"


class AllowlistConflictError(ConflictError):
    """The network is on the allow-list already."""

    code = "allowlist_entry_exists"


class AllowlistLockoutError(DomainError):
    """The change would refuse the very address the admin is making it from."""

    status_code = 422
    code = "allowlist_would_lock_you_out"


class PayoutBatchNotFoundError(NotFoundError):
    """No such payout batch in this organisation."""

    code = "payout_batch_not_found"


class PayoutBatchInvalidError(DomainError):
    """A batch with an invalid row cannot be executed."""

    status_code = 422
    code = "payout_batch_invalid"


class PayoutFileError(DomainError):
    """The uploaded file is not a payout CSV (encoding, header, size, row count)."""

    status_code = 422
    code = "invalid_payout_file"


class ExportTooLargeError(DomainError):
    """More rows than one export may hold: narrow the period."""

    status_code = 422
    code = "export_too_large"


class UploadTooLargeError(DomainError):
    """The request body is larger than an upload may be (refused while it is received)."""

    status_code = 413
    code = "payload_too_large"
