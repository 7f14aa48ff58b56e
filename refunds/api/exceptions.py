"""One error format for the whole API: `{"error": {"code": "UPPER_SNAKE", "message": "..."}}`.

Domain errors (refunds.errors.RefundError) carry their code and status; DRF's own errors are
mapped below. Whatever else escapes a view is logged and answered as 500 INTERNAL_ERROR in the
same format, never as an HTML page.
"""

import logging
import re

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from refunds.errors import RefundError

logger = logging.getLogger(__name__)

# The code of a serializer error that is about an amount's value (not its type): API.md's
# 422 INVALID_AMOUNT rather than 400 INVALID_REQUEST.
INVALID_AMOUNT = "invalid_amount"


class MerchantNotFound(RefundError):
    """No such merchant."""

    code, http_status = "MERCHANT_NOT_FOUND", 404


class EndpointNotFound(RefundError):
    """No such endpoint."""

    code, http_status = "NOT_FOUND", 404


# Services name the field they refuse at the start of the message: "parts[0].channel: unknown
# channel", "parts[0].channel is required ...", "amount must be ...".
_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)?)(?=: | is | must )")

# DRF exception -> our code. Order matters: subclasses first.
_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.NotAuthenticated, "UNAUTHENTICATED"),
    (exceptions.AuthenticationFailed, "UNAUTHENTICATED"),
    (exceptions.PermissionDenied, "FORBIDDEN"),
    (exceptions.NotFound, "NOT_FOUND"),
    (exceptions.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (exceptions.NotAcceptable, "NOT_ACCEPTABLE"),
    (exceptions.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    (exceptions.Throttled, "RATE_LIMITED"),
    (exceptions.ParseError, "INVALID_REQUEST"),
    (exceptions.ValidationError, "INVALID_REQUEST"),
]


def error_body(code: str, message: str, param: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def first_error(detail, path: str = "") -> tuple[str, exceptions.ErrorDetail | str]:
    """The first error in a DRF error structure, with the path of the field it is about
    (`amount`, `parts[1].amount`, `settlement.currency`; empty for the body as a whole)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if not value:
                continue
            if key in ("non_field_errors", "detail"):
                return first_error(value, path)
            sub = f"{path}[{key}]" if isinstance(key, int) or str(key).isdigit() else (f"{path}.{key}" if path else str(key))
            return first_error(value, sub)
    if isinstance(detail, list):
        for i, value in enumerate(detail):
            if not value:
                continue
            if isinstance(value, (dict, list)):
                # A list of errors for one field holds strings; a list of dicts is per item.
                return first_error(value, f"{path}[{i}]" if isinstance(value, dict) else path)
            return path, value
    return path, detail


def _validation_error(exc: exceptions.ValidationError) -> tuple[int, str, str, str | None]:
    param, detail = first_error(exc.detail)
    text = str(detail)
    if getattr(detail, "code", None) == INVALID_AMOUNT:
        return 422, "INVALID_AMOUNT", f"{param}: {text}" if param else text, param or None
    return 400, "INVALID_REQUEST", f"{param}: {text}" if param else text, param or None


def api_exception_handler(exc, context):
    if isinstance(exc, RefundError):
        set_rollback()
        field = _FIELD_PREFIX.match(exc.message)
        param = exc.details.get("param") or (field and field.group(1))
        return Response(error_body(exc.code, exc.message, param), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        logger.exception("unhandled error in the merchant API", exc_info=exc)
        set_rollback()
        return Response(
            error_body("INTERNAL_ERROR", "something went wrong on our side; it was logged"),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    param = None
    if isinstance(exc, exceptions.ValidationError):
        http_status, code, message, param = _validation_error(exc)
    else:
        http_status = exc.status_code
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), str(exc.default_code).upper())
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else first_error(exc.detail)[1]
        if isinstance(exc, exceptions.ParseError):
            message = f"the body is not valid JSON: {message}"
        elif isinstance(exc, exceptions.Throttled):
            message = f"too many requests with this API key: retry in {headers.get('Retry-After', 'a few')} seconds"
    set_rollback()
    return Response(error_body(code, str(message), param), status=http_status, headers=headers)


def not_found(request, *args, **kwargs):
    """Any other path under /api/v1/: a JSON 404 rather than Django's HTML page."""
    return JsonResponse(error_body(EndpointNotFound.code, f"no endpoint {request.path}"), status=404)
