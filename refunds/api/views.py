"""The merchant API (API.md): one view per resource, each method validates with a serializer,
calls one service or selector, and renders the selectors' public objects."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from merchants.models import ApiKey, Merchant
from refunds import errors, selectors, services

from . import serializers as s
from .exceptions import MerchantNotFound
from .negotiation import AlwaysJson
from .schema import (
    PAYMENT_EXAMPLE,
    PAYMENT_REQUEST_EXAMPLE,
    REFUND_EXAMPLE,
    REFUND_LIST_EXAMPLE,
    REFUND_REQUEST_EXAMPLE,
    error_responses,
)

BOTH_SCOPES = (ApiKey.Scope.REFUNDS, ApiKey.Scope.PAYMENTS)


class ApiView(APIView):
    """`scopes`: the API key scopes that may call the view (refunds.api.auth.HasScope);
    `query_parameters`: the query parameters it knows (others are refused, like unknown fields)."""

    scopes: tuple[str, ...] = ()
    query_parameters: tuple[str, ...] = ()
    content_negotiation_class = AlwaysJson
    http_method_names = ["get", "post", "head"]

    def initial(self, request, *args, **kwargs):
        # The method first: an unsupported one is 405 whoever asks, before keys and scopes.
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            self.http_method_not_allowed(request)
        super().initial(request, *args, **kwargs)
        # A misspelt filter (?out_refund=R1) must not silently answer every refund.
        allowed = self.query_parameters if method in ("get", "head") else ()
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            raise ValidationError({unknown[0]: ["unknown query parameter"]})


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PaymentCollectionApi(ApiView):
    scopes = (ApiKey.Scope.PAYMENTS,)

    @extend_schema(
        operation_id="payments_report",
        summary="Report a completed payment",
        description=(
            "The payment core reports a payment of any merchant (`merchant` is its code); its collected "
            "amount is credited to the merchant's pending-settlement account. Scope `payments`.\n\n"
            "Idempotent on (merchant, out_trade_no): the same content again answers 200 with the stored "
            "payment, different content 409 `OUT_TRADE_NO_CONFLICT`."
        ),
        tags=["payments"],
        request=s.PaymentCreateRequestSerializer,
        examples=[OpenApiExample("A payment in three parts", value=PAYMENT_REQUEST_EXAMPLE, request_only=True)],
        responses={
            201: OpenApiResponse(s.PaymentSerializer, description="Recorded.",
                                 examples=[OpenApiExample("Recorded", value={**PAYMENT_EXAMPLE, "refunded_amount": 0,
                                                                             "refundable_amount": 10000},
                                                          response_only=True, status_codes=["201"])]),
            200: OpenApiResponse(s.PaymentSerializer, description="Already recorded with the same content."),
            **error_responses("INVALID_REQUEST", "MERCHANT_NOT_FOUND", "OUT_TRADE_NO_CONFLICT", "INVALID_AMOUNT", "UNSUPPORTED_MEDIA_TYPE"),
        },
    )
    def post(self, request):
        data = _valid(s.PaymentCreateRequestSerializer, request.data)
        merchant = Merchant.objects.filter(code=data["merchant"]).first()
        if merchant is None:
            raise MerchantNotFound(f"no merchant {data['merchant']}")
        settlement = data["settlement"] or {}
        payment, created = services.payment_ingest(
            merchant=merchant,
            out_trade_no=data["out_trade_no"],
            amount=data["amount"],
            currency=data["currency"],
            user_id=data["user_id"],
            paid_at=data["paid_at"],
            parts=[services.PartInput(**part) for part in data["parts"]],
            settlement_currency=settlement.get("currency"),
            settlement_amount=settlement.get("amount"),
            expires_at=data["expires_at"],
            auto_refund_on_expiry=data["auto_refund_on_expiry"],
        )
        return Response(selectors.payment_as_dict(payment), status=201 if created else 200)


class PaymentDetailApi(ApiView):
    scopes = BOTH_SCOPES

    @extend_schema(
        operation_id="payments_retrieve",
        summary="Retrieve a payment",
        description="One of the key's merchant's payments, with its parts, refunded and refundable amounts. "
        "Either scope.",
        tags=["payments"],
        parameters=[OpenApiParameter("out_trade_no", OpenApiTypes.STR, OpenApiParameter.PATH,
                                     description="The merchant's payment number.")],
        responses={
            200: OpenApiResponse(s.PaymentSerializer, examples=[
                OpenApiExample("Partly refunded", value=PAYMENT_EXAMPLE, response_only=True, status_codes=["200"])]),
            **error_responses("PAYMENT_NOT_FOUND"),
        },
    )
    def get(self, request, out_trade_no: str):
        payment = None
        if len(out_trade_no) <= 64 and "\x00" not in out_trade_no:
            payment = selectors.payment_get(merchant=request.user.merchant, out_trade_no=out_trade_no)
        if payment is None:
            raise errors.PaymentNotFound(f"no payment {out_trade_no[:64]} for merchant {request.user.merchant.code}")
        return Response(selectors.payment_as_dict(payment))


class RefundCollectionApi(ApiView):
    scopes = (ApiKey.Scope.REFUNDS,)
    query_parameters = tuple(s.RefundListQuerySerializer().fields)

    @extend_schema(
        operation_id="refunds_create",
        summary="Ask for a refund",
        description=(
            "Refunds part or all of a payment of the key's merchant. Scope `refunds`.\n\n"
            "`201` with the new refund; the same `out_refund_no` with the same body again: `200` and the "
            "same refund; with a different body: `409 OUT_REFUND_NO_CONFLICT`. Refunds of a payment never "
            "sum past what was paid, also under concurrent requests."
        ),
        tags=["refunds"],
        request=s.RefundCreateRequestSerializer,
        examples=[OpenApiExample("A partial refund", value=REFUND_REQUEST_EXAMPLE, request_only=True)],
        responses={
            201: OpenApiResponse(s.RefundSerializer, description="Accepted.", examples=[
                OpenApiExample("Accepted", value=REFUND_EXAMPLE, response_only=True, status_codes=["201"])]),
            200: OpenApiResponse(s.RefundSerializer, description="A replay: the refund made by the same request."),
            **error_responses(
                "INVALID_REQUEST", "PAYMENT_NOT_FOUND", "OUT_REFUND_NO_CONFLICT", "INVALID_AMOUNT", "AMOUNT_EXCEEDS_REFUNDABLE",
                "INSUFFICIENT_BALANCE", "FX_RATE_UNAVAILABLE", "UNSUPPORTED_MEDIA_TYPE",
            ),
        },
    )
    def post(self, request):
        data = _valid(s.RefundCreateRequestSerializer, request.data)
        refund, created = services.refund_create(merchant=request.user.merchant, actor=request.user.actor, **data)
        return Response(selectors.refund_as_dict(refund), status=201 if created else 200)

    @extend_schema(
        operation_id="refunds_list",
        summary="List refunds, or look one up by out_refund_no",
        description=(
            "The key's merchant's refunds, newest first, a page at a time: pass the answer's `next_cursor` "
            "as `starting_after` for the next page while `has_more` is true. `out_trade_no` keeps the "
            "refunds of one payment. With `out_refund_no` the answer is that one refund object (404 "
            "`REFUND_NOT_FOUND` when there is none), not a list. Scope `refunds`."
        ),
        tags=["refunds"],
        parameters=[s.RefundListQuerySerializer],
        responses={
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="RefundListOrRefund",
                    serializers=[s.RefundListSerializer, s.RefundSerializer],
                    resource_type_field_name=None,
                ),
                description="A page of refunds (RefundList); or, with `out_refund_no`, the refund object (Refund).",
                examples=[
                    OpenApiExample("A page", value=REFUND_LIST_EXAMPLE, response_only=True, status_codes=["200"]),
                    OpenApiExample("By out_refund_no", value=REFUND_EXAMPLE, response_only=True,
                                   status_codes=["200"]),
                ],
            ),
            **error_responses("INVALID_REQUEST", "REFUND_NOT_FOUND"),
        },
    )
    def get(self, request):
        query = _valid(s.RefundListQuerySerializer, request.query_params.dict())
        merchant = request.user.merchant
        if "out_refund_no" in query:
            refund = selectors.refund_get(merchant=merchant, out_refund_no=query["out_refund_no"])
            if refund is None or query.get("out_trade_no", refund.payment.out_trade_no) != refund.payment.out_trade_no:
                raise errors.RefundNotFound(f"no refund {query['out_refund_no']} for merchant {merchant.code}")
            return Response(selectors.refund_as_dict(refund))
        starting_after = None
        if "starting_after" in query:
            starting_after = selectors.refund_get(merchant=merchant, refund_id=query["starting_after"])
            if starting_after is None:
                raise errors.RefundNotFound(f"starting_after: no refund {query['starting_after']}")
        page, has_more = selectors.refund_page(
            merchant=merchant, limit=query["limit"], starting_after=starting_after,
            out_trade_no=query.get("out_trade_no"),
        )
        return Response({
            "data": [selectors.refund_as_dict(r) for r in page],
            "has_more": has_more,
            "next_cursor": str(page[-1].pk) if has_more else None,
        })


class RefundDetailApi(ApiView):
    scopes = (ApiKey.Scope.REFUNDS,)

    @extend_schema(
        operation_id="refunds_retrieve",
        summary="Retrieve a refund",
        description="One of the key's merchant's refunds; another merchant's refund is 404 too. Scope `refunds`.",
        tags=["refunds"],
        parameters=[OpenApiParameter("refund_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                                     description="The refund's `id`.")],
        responses={
            200: OpenApiResponse(s.RefundSerializer, examples=[
                OpenApiExample("Processing", value=REFUND_EXAMPLE, response_only=True, status_codes=["200"])]),
            **error_responses("REFUND_NOT_FOUND"),
        },
    )
    def get(self, request, refund_id: str):
        refund = None
        if s.UUID_RE.match(refund_id):
            refund = selectors.refund_get(merchant=request.user.merchant, refund_id=refund_id.lower())
        if refund is None:
            raise errors.RefundNotFound(f"no refund {refund_id[:64]}")
        return Response(selectors.refund_as_dict(refund))
