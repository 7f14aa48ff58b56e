"""OpenAPI documentation of the merchant API: bearer auth, examples, every error code."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from .serializers import ErrorSerializer


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "refunds.api.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <api key>`. A key belongs to one merchant and has one scope: "
                "`refunds` (the merchant's own refunds and payments) or `payments` (the payment core). "
                "Keys are made with `manage.py create_api_key CODE --scope refunds|payments`."
            ),
        }


# code -> (HTTP status, what it means, an example message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "INVALID_REQUEST": (400, "The body is not valid JSON of the right shape; `param` names the field.",
                        "amount: must be an integer of minor units"),
    "UNAUTHENTICATED": (401, "No API key, or an unknown or revoked one.", "unknown API key"),
    "FORBIDDEN": (403, "The key's scope does not allow this.",
                  "this needs an API key of scope refunds; this key's scope is payments"),
    "PAYMENT_NOT_FOUND": (404, "The merchant has no such payment.", "no payment T1001 for merchant M001"),
    "REFUND_NOT_FOUND": (404, "The merchant has no such refund.", "no refund 7f1c…"),
    "MERCHANT_NOT_FOUND": (404, "No merchant with this code.", "no merchant M404"),
    "OUT_TRADE_NO_CONFLICT": (409, "This out_trade_no was reported with different content.",
                              "out_trade_no T1001 was reported with different content"),
    "OUT_REFUND_NO_CONFLICT": (409, "This out_refund_no was used for a different request.",
                               "out_refund_no R1 was used for a different request"),
    "INVALID_AMOUNT": (422, "An amount out of range: a positive integer of minor units.",
                       "amount: must be between 1 and 9223372036854775807 minor units"),
    "AMOUNT_EXCEEDS_REFUNDABLE": (422, "Refunds of a payment never sum past what was paid.",
                                  "amount 3000 exceeds the refundable 2000 of payment T1001"),
    "INSUFFICIENT_BALANCE": (422, "The merchant's refund source account cannot cover the refund: top it up.",
                             "the merchant's pending settlement account cannot cover 3000 CNY: top it up"),
    "FX_RATE_UNAVAILABLE": (422, "No exchange rate today between the payment and settlement currencies.",
                            "no FX rate USD/CNY for 2026-11-20"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "The body must be sent as `Content-Type: application/json`.",
                               "Unsupported media type \"text/plain\" in request."),
    "RATE_LIMITED": (429, "Too many requests with this key; see the Retry-After header.",
                     "too many requests with this API key: retry in 12 seconds"),
}
COMMON = ("UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED")


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, one example per code, grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in (*COMMON, *codes):
        by_status.setdefault(ERRORS[code][0], []).append(code)
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description="; ".join(f"`{c}`: {ERRORS[c][1]}" for c in status_codes),
            examples=[
                OpenApiExample(c, value={"error": {"code": c, "message": ERRORS[c][2]}}, response_only=True,
                               status_codes=[str(status)])
                for c in status_codes
            ],
        )
        for status, status_codes in sorted(by_status.items())
    }


LEG_EXAMPLE = {"route": "wechat", "amount": 2400, "status": "PROCESSING", "channel_refund_id": None}
REFUND_EXAMPLE = {
    "id": "0b8f5a52-6a55-4f43-9a2e-0f2d1d6f3b11", "out_refund_no": "R1", "out_trade_no": "T1001", "amount": 3000,
    "currency": "CNY", "direction": "original", "source": "merchant", "reason": "item out of stock",
    "status": "PROCESSING", "failure_reason": None, "estimated_arrival": "2026-11-27",
    "breakdown": {"channel": 2400, "balance": 300, "coupon_not_returned": 300},
    "legs": [LEG_EXAMPLE, {"route": "balance", "amount": 300, "status": "SUCCEEDED"}],
    "created_at": "2026-11-20T11:00:00+08:00", "completed_at": None,
}
REFUND_REQUEST_EXAMPLE = {
    "out_trade_no": "T1001", "out_refund_no": "R1", "amount": 3000, "reason": "item out of stock",
    "direction": "original", "source": "merchant", "notify_url": "http://127.0.0.1:9000/hook",
}
PAYMENT_REQUEST_EXAMPLE = {
    "merchant": "M001", "out_trade_no": "T1001", "amount": 10000, "currency": "CNY", "user_id": "u-42",
    "paid_at": "2026-11-20T10:00:00+08:00",
    "parts": [
        {"kind": "channel", "channel": "wechat", "amount": 8000, "channel_txn_id": "42000001"},
        {"kind": "balance", "amount": 1000},
        {"kind": "coupon", "amount": 1000, "coupon_id": "C-9"},
    ],
    "settlement": {"currency": "CNY", "amount": 10000},
    "expires_at": None, "auto_refund_on_expiry": False,
}
PAYMENT_EXAMPLE = {
    "merchant": "M001", "out_trade_no": "T1001", "amount": 10000, "currency": "CNY", "user_id": "u-42",
    "paid_at": "2026-11-20T10:00:00+08:00",
    "parts": [
        {"kind": "channel", "amount": 8000, "channel": "wechat", "channel_txn_id": "42000001", "coupon_id": None,
         "refunded_amount": 2400, "refundable_amount": 5600},
        {"kind": "balance", "amount": 1000, "channel": None, "channel_txn_id": None, "coupon_id": None,
         "refunded_amount": 300, "refundable_amount": 700},
        {"kind": "coupon", "amount": 1000, "channel": None, "channel_txn_id": None, "coupon_id": "C-9",
         "refunded_amount": 300, "refundable_amount": 700},
    ],
    "settlement": {"currency": "CNY", "amount": 10000}, "expires_at": None, "auto_refund_on_expiry": False,
    "refunded_amount": 3000, "refundable_amount": 7000, "created_at": "2026-11-20T10:00:01+08:00",
}
REFUND_LIST_EXAMPLE = {"data": [REFUND_EXAMPLE], "has_more": True, "next_cursor": REFUND_EXAMPLE["id"]}


def postprocess_schema(result, generator, request, public):
    """Request bodies refuse unknown fields (StrictSerializer): say so, so that clients and
    schema-driven tests know; and list every error code once, in the description."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    table = "\n".join(f"| `{code}` | {status} | {meaning} |" for code, (status, meaning, _) in ERRORS.items())
    result["info"]["description"] = (
        result["info"].get("description", "")
        + "\n\nEvery error is `{\"error\": {\"code\": \"UPPER_SNAKE\", \"message\": \"...\"}}` "
        "(with `param` naming the field when one is at fault).\n\n| code | status | meaning |\n| --- | --- | --- |\n"
        + table
        + "\n\nAlso, in the same format: `NOT_FOUND` (404, no such endpoint), `METHOD_NOT_ALLOWED` (405), "
        "`INTERNAL_ERROR` (500)."
    )
    return result
