"""Domain errors with the codes of API.md. The API's exception handler renders them as-is."""


class RefundError(Exception):
    code = "INVALID_REQUEST"
    http_status = 400

    def __init__(self, message: str = "", **details):
        self.message = message or self.__doc__ or self.code
        self.details = details
        super().__init__(self.message)


class InvalidRequest(RefundError):
    """The request is malformed."""

    code, http_status = "INVALID_REQUEST", 400


class PaymentNotFound(RefundError):
    """No such payment for this merchant."""

    code, http_status = "PAYMENT_NOT_FOUND", 404


class RefundNotFound(RefundError):
    """No such refund for this merchant."""

    code, http_status = "REFUND_NOT_FOUND", 404


class InvalidAmount(RefundError):
    """The amount must be a positive integer of minor units."""

    code, http_status = "INVALID_AMOUNT", 422


class AmountExceedsRefundable(RefundError):
    """The refunds of a payment cannot sum past what was paid."""

    code, http_status = "AMOUNT_EXCEEDS_REFUNDABLE", 422


class InsufficientBalance(RefundError):
    """The merchant's refund source account cannot cover this refund: top it up."""

    code, http_status = "INSUFFICIENT_BALANCE", 422


class FxRateUnavailable(RefundError):
    """No exchange rate is set for today between the payment and settlement currencies."""

    code, http_status = "FX_RATE_UNAVAILABLE", 422


class OutRefundNoConflict(RefundError):
    """This out_refund_no was already used with a different request."""

    code, http_status = "OUT_REFUND_NO_CONFLICT", 409


class OutTradeNoConflict(RefundError):
    """This out_trade_no was already reported with different content."""

    code, http_status = "OUT_TRADE_NO_CONFLICT", 409


class InvalidState(RefundError):
    """The refund is not in a state that allows this action."""

    code, http_status = "INVALID_STATE", 409


class FourEyesViolation(RefundError):
    """You created this refund: another person must approve it."""

    code, http_status = "FOUR_EYES_REQUIRED", 403
