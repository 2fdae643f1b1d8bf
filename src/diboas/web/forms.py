"""Forms: the API's own request models validate what a web form sends, so the browser and
the API accept exactly the same input; errors come back per field, for the form to show."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from diboas.kit.errors import DomainError

M = TypeVar("M", bound=BaseModel)

# Pydantic's messages start with the kind of problem ("Value error, ..."), which reads badly
# next to a form field.
_PREFIXES = ("Value error, ", "Assertion failed, ")


class FormErrors(dict[str, str]):
    """Field name → message; ``""`` holds a message for the whole form.

    ``status_code`` is what the page answers with when the form is refused: 422 for input
    that does not validate, the service's own status for a refusal (401, 409, 422...).
    """

    status_code: int = 422

    def add_domain_error(self, error: DomainError) -> None:
        """A service's refusal, on the field it names when it names one."""
        self.status_code = error.status_code
        details = error.details if isinstance(error.details, dict) else {}
        field = details.get("field")
        message = error.message[:1].upper() + error.message[1:]
        requirements = details.get("requirements")
        if isinstance(requirements, list) and requirements:
            message = f"{message}: " + "; ".join(str(r) for r in requirements)
        self[field if isinstance(field, str) and field else ""] = message


def _message(error: Any) -> str:
    text = str(error.get("msg", "is not valid"))
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    return text[:1].upper() + text[1:]


def validate(model: type[M], values: dict[str, Any]) -> tuple[M | None, FormErrors]:
    """The model built from ``values`` (empty strings count as absent), or the errors."""
    cleaned = {k: v for k, v in values.items() if v not in ("", None)}
    try:
        return model.model_validate(cleaned), FormErrors()
    except ValidationError as invalid:
        errors = FormErrors()
        for error in invalid.errors():
            location = error.get("loc") or ()
            name = str(location[0]) if location else ""
            errors.setdefault(name, _message(error))
        return None, errors
