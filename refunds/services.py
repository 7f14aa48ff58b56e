"""Use cases of refunds: ingest payments, create, approve, reject, cancel refunds, book leg results.

Each runs in one transaction. Lock order, always: payment, then refund, then its legs; merchant
accounts are touched last (inside merchants.services.ledger_post), as briefly as possible.
"""

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.utils import timezone

from channels.models import Channel
from merchants import services as money
from merchants import sql
from merchants.models import Account, FxRate, LedgerTransaction, Merchant
from merchants.money import convert, split_proportionally, to_minor

from . import errors, risk
from .models import Payment, PaymentPart, Refund, RefundEvent, RefundLeg

MANUAL_PAYOUT_DAYS = 7  # typical time for customer service to collect a card and finance to pay


def _fingerprint(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Payments


@dataclass(frozen=True)
class PartInput:
    kind: str
    amount: int
    channel: str = ""
    channel_txn_id: str = ""
    coupon_id: str = ""


def payment_ingest(
    *,
    merchant: Merchant,
    out_trade_no: str,
    amount: int,
    user_id: str,
    paid_at: datetime.datetime,
    parts: list[PartInput],
    currency: str = "CNY",
    settlement_currency: str | None = None,
    settlement_amount: int | None = None,
    expires_at: datetime.datetime | None = None,
    auto_refund_on_expiry: bool = False,
    record_version: int = Payment.RecordVersion.CURRENT,
    legacy_amount_yuan: Decimal | None = None,
) -> tuple[Payment, bool]:
    """Record a completed payment and credit the merchant's pending-settlement account.

    Idempotent on (merchant, out_trade_no): the same content returns the stored payment,
    different content raises OutTradeNoConflict.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise errors.InvalidAmount("amount must be a positive integer of minor units")
    if not parts:
        raise errors.InvalidRequest("parts: at least one part is required")
    for i, part in enumerate(parts):
        if part.kind not in PaymentPart.Kind.values:
            raise errors.InvalidRequest(f"parts[{i}].kind must be one of {', '.join(PaymentPart.Kind.values)}")
        if not isinstance(part.amount, int) or isinstance(part.amount, bool) or part.amount <= 0:
            raise errors.InvalidAmount(f"parts[{i}].amount must be a positive integer")
        if part.kind == PaymentPart.Kind.CHANNEL and not part.channel:
            raise errors.InvalidRequest(f"parts[{i}].channel is required for a channel part")
    if sum(p.amount for p in parts) != amount:
        raise errors.InvalidRequest("parts must add up to amount")
    currency = currency.upper()
    settlement_currency = (settlement_currency or currency).upper()
    if settlement_amount is None:
        if settlement_currency != currency:
            raise errors.InvalidRequest("settlement.amount is required when the settlement currency differs")
        settlement_amount = amount
    if not isinstance(settlement_amount, int) or settlement_amount < 0:
        raise errors.InvalidAmount("settlement.amount must be a non-negative integer")

    request_hash = _fingerprint(
        amount=amount, currency=currency, user_id=user_id, paid_at=paid_at.isoformat(),
        parts=[p.__dict__ for p in parts], settlement=[settlement_currency, settlement_amount],
        expires_at=expires_at.isoformat() if expires_at else None, auto=auto_refund_on_expiry,
    )
    existing = Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()
    if existing is not None:
        if existing.request_hash != request_hash:
            raise errors.OutTradeNoConflict(f"out_trade_no {out_trade_no} was reported with different content")
        return existing, False

    channels = {c.code: c for c in Channel.objects.filter(code__in={p.channel for p in parts if p.channel})}
    for i, part in enumerate(parts):
        if part.kind == PaymentPart.Kind.CHANNEL and part.channel not in channels:
            raise errors.InvalidRequest(f"parts[{i}].channel: unknown channel {part.channel!r}")
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                merchant=merchant, out_trade_no=out_trade_no, amount=amount, currency=currency, user_id=user_id,
                paid_at=paid_at, settlement_currency=settlement_currency, settlement_amount=settlement_amount,
                expires_at=expires_at, auto_refund_on_expiry=auto_refund_on_expiry, record_version=record_version,
                legacy_amount_yuan=legacy_amount_yuan, request_hash=request_hash,
            )
            PaymentPart.objects.bulk_create(
                [
                    PaymentPart(
                        payment=payment, position=i, kind=p.kind, amount=p.amount,
                        channel=channels.get(p.channel) if p.kind == PaymentPart.Kind.CHANNEL else None,
                        channel_txn_id=p.channel_txn_id, coupon_id=p.coupon_id,
                    )
                    for i, p in enumerate(parts)
                ]
            )
            if settlement_amount:
                pending = money.merchant_accounts(merchant, settlement_currency, [Account.Kind.PENDING_SETTLEMENT])
                money.ledger_post(
                    kind=LedgerTransaction.Kind.PAYMENT,
                    lines=[
                        money.Line(money.platform_account(Account.Kind.COLLECTIONS, settlement_currency), -settlement_amount),
                        money.Line(pending[Account.Kind.PENDING_SETTLEMENT], settlement_amount),
                    ],
                    reference=f"payment:{payment.pk}",
                    description=f"collected {merchant.code}/{out_trade_no}",
                    created_by="payment-core",
                )
    except IntegrityError:
        # A concurrent report of the same out_trade_no won the race: answer as a replay.
        existing = Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()
        if existing is None:
            raise
        if existing.request_hash != request_hash:
            raise errors.OutTradeNoConflict(f"out_trade_no {out_trade_no} was reported with different content") from None
        return existing, False
    return payment, True


def payment_import_legacy(
    *, merchant: Merchant, out_trade_no: str, amount_yuan: Decimal, channel: str, channel_txn_id: str,
    user_id: str, paid_at: datetime.datetime,
) -> tuple[Payment, bool]:
    """Import a v1 payment: amounts in yuan as decimals and no parts, so one channel part (S12)."""
    amount = to_minor(Decimal(amount_yuan), "CNY")
    return payment_ingest(
        merchant=merchant, out_trade_no=out_trade_no, amount=amount, user_id=user_id, paid_at=paid_at,
        parts=[PartInput(kind=PaymentPart.Kind.CHANNEL, amount=amount, channel=channel, channel_txn_id=channel_txn_id)],
        record_version=Payment.RecordVersion.LEGACY_V1, legacy_amount_yuan=Decimal(amount_yuan),
    )


# ---------------------------------------------------------------------------------------------
# Allocation (S17, S22) and routing (S4, S10, S16)


def allocate(*, parts: list[PaymentPart], amount: int, strategy: str) -> list[int]:
    """Split a refund across the payment's parts; returns each part's share, in order.

    Proportional splits by what each part still has, so a sequence of partial refunds ends
    exactly at each part's amount. Coupon-first consumes the coupon parts, then the others
    in order. Either way a share never exceeds what its part has left.
    """
    remaining = [p.remaining for p in parts]
    if strategy == Merchant.Allocation.COUPON_FIRST:
        shares = [0] * len(parts)
        left = amount
        order = sorted(range(len(parts)), key=lambda i: (parts[i].kind != PaymentPart.Kind.COUPON, i))
        for i in order:
            take = min(left, remaining[i])
            shares[i] = take
            left -= take
        return shares
    return split_proportionally(amount, remaining)


@dataclass
class PlannedLeg:
    route: str
    amount: int
    part: PaymentPart | None = None
    channel: Channel | None = None
    fallback_reason: str = ""


def plan_legs(
    *, payment: Payment, parts: list[PaymentPart], shares: list[int], direction: str, fallback: str,
    now: datetime.datetime, channel_legs: dict[int, int],
) -> tuple[list[PlannedLeg], int]:
    """The legs money takes back, and the coupon share that is not returned as money.

    `channel_legs`: per channel part id, its legs so far on its channel, not cancelled (read with
    the parts, _parts_with_channel_legs)."""
    coupon_share = sum(s for p, s in zip(parts, shares, strict=True) if p.kind == PaymentPart.Kind.COUPON)
    money_shares = [(p, s) for p, s in zip(parts, shares, strict=True) if s and p.kind != PaymentPart.Kind.COUPON]
    if direction == Refund.Direction.BALANCE:
        total = sum(s for _, s in money_shares)
        return ([PlannedLeg(route=RefundLeg.Route.BALANCE, amount=total)] if total else []), coupon_share

    legs = []
    for part, share in money_shares:
        if part.kind == PaymentPart.Kind.BALANCE:
            legs.append(PlannedLeg(route=RefundLeg.Route.BALANCE, amount=share, part=part))
            continue
        channel = part.channel
        reason = ""
        if not channel.accepts_refund_of(payment.paid_at, now):
            reason = "WINDOW_EXPIRED"
        elif channel.max_refunds_per_payment and channel_legs.get(part.pk, 0) >= channel.max_refunds_per_payment:
            reason = "MAX_REFUNDS_REACHED"
        if reason:
            legs.append(PlannedLeg(route=fallback, amount=share, part=part, fallback_reason=reason))
        else:
            legs.append(PlannedLeg(route=channel.code, amount=share, part=part, channel=channel))
    return legs, coupon_share


def fx_rate(*, base: str, quote: str, day: datetime.date) -> Decimal:
    """The rate of the refund's day (S23). Rates are not published on weekends and holidays, so
    the latest one at most settings.FX_RATE_MAX_AGE_DAYS old stands in; the inverse pair is used
    if only it is set. An older rate is refused rather than guessed."""
    oldest = day - datetime.timedelta(days=settings.FX_RATE_MAX_AGE_DAYS)
    rates = FxRate.objects.filter(day__lte=day, day__gte=oldest).order_by("-day").values_list("rate", flat=True)
    rate = rates.filter(base=base, quote=quote).first()
    if rate is not None:
        return rate
    inverse = rates.filter(base=quote, quote=base).first()
    if inverse is not None:
        return Decimal(1) / inverse
    raise errors.FxRateUnavailable(f"no {base}/{quote} rate set for {day}")


def hold_for(*, payment: Payment, money_out: int, now: datetime.datetime) -> int:
    """What the merchant gives up for `money_out` of the payment currency, in settlement currency (S23).

    Same currency: exactly the money returned. Otherwise today's rate, but never more than
    the refund's proportional share of the original settlement amount.
    """
    if payment.settlement_currency == payment.currency:
        return money_out
    if money_out == 0:
        return 0
    day = timezone.localdate(now)
    at_today = convert(money_out, rate=fx_rate(base=payment.currency, quote=payment.settlement_currency, day=day),
                       source=payment.currency, target=payment.settlement_currency)
    proportional_cap = payment.settlement_amount * money_out // payment.amount
    return min(at_today, proportional_cap)


def estimate_arrival(legs: list[PlannedLeg] | list[RefundLeg], *, today: datetime.date) -> datetime.date:
    days = 0
    for leg in legs:
        if leg.route == RefundLeg.Route.MANUAL:
            days = max(days, MANUAL_PAYOUT_DAYS)
        elif leg.channel is not None:
            days = max(days, leg.channel.typical_days_to_arrive)
    return today + datetime.timedelta(days=days)


# ---------------------------------------------------------------------------------------------
# Refunds

# The statements of refund_create, in plain SQL: it is the API's busiest request (merchants/sql.py).
_REFUND_BY_NO = f"SELECT {sql.columns(Refund)} FROM {sql.table(Refund)} WHERE merchant_id = %s AND out_refund_no = %s"
# The payment, locked, with what else the refund needs of the merchant: the two accounts its
# hold moves between, and whether the out_refund_no is taken already (then: a replay, or a conflict).
_LOCK_PAYMENT = (
    f"SELECT {sql.columns(Payment, 'p')}, {sql.columns(Account, 'a1')}, {sql.columns(Account, 'a2')}, r.id "
    f"FROM {sql.table(Payment)} p "
    f"LEFT JOIN {sql.table(Account)} a1 ON a1.merchant_id = p.merchant_id AND a1.currency = p.settlement_currency "
    f"AND a1.kind = %s AND a1.user_id = '' AND a1.sub_ledger = '' "
    f"LEFT JOIN {sql.table(Account)} a2 ON a2.merchant_id = p.merchant_id AND a2.currency = p.settlement_currency "
    f"AND a2.kind = %s AND a2.user_id = '' AND a2.sub_ledger = '' "
    f"LEFT JOIN {sql.table(Refund)} r ON r.merchant_id = p.merchant_id AND r.out_refund_no = %s "
    f"WHERE p.merchant_id = %s AND p.out_trade_no = %s"
    + (" FOR UPDATE OF p" if connection.features.has_select_for_update_of else "")  # SQLite locks the whole database
)
# Each part with its channel and, where the channel limits refunds per payment, the part's legs
# on that channel so far (plan_legs' MAX_REFUNDS_REACHED).
_PARTS_WITH_CHANNEL_LEGS = (
    f"SELECT {sql.columns(PaymentPart, 'p')}, {sql.columns(Channel, 'c')}, "
    f"CASE WHEN c.max_refunds_per_payment > 0 THEN (SELECT COUNT(*) FROM {sql.table(RefundLeg)} l "
    f"WHERE l.payment_part_id = p.id AND l.route = c.code AND l.status <> %s) ELSE 0 END "
    f"FROM {sql.table(PaymentPart)} p LEFT JOIN {sql.table(Channel)} c ON c.id = p.channel_id "
    f"WHERE p.payment_id = %s ORDER BY p.position"
)
_PAYMENT_REFUNDED = f"UPDATE {sql.table(Payment)} SET refunded_amount = refunded_amount + %s WHERE id = %s"


def _refund_by_no(merchant: Merchant, out_refund_no: str) -> Refund | None:
    rows = sql.fetch(Refund, _REFUND_BY_NO, [merchant.pk, out_refund_no])
    return rows[0][0] if rows else None


def _lock_payment(
    merchant: Merchant, out_trade_no: str, out_refund_no: str, hold_kinds: tuple[str, str]
) -> tuple[Payment | None, dict[str, Account] | None, bool]:
    """(the payment, locked; its hold accounts by kind, None if one is missing; whether a refund
    has this out_refund_no already), in one round trip."""
    rows = sql.fetch(Payment, _LOCK_PAYMENT, [*hold_kinds, out_refund_no, merchant.pk, out_trade_no])
    if not rows:
        return None, None, False
    payment, rest = rows[0]
    payment.merchant = merchant
    n = len(Account._meta.concrete_fields)
    accounts = None
    if rest[0] is not None and rest[n] is not None:
        accounts = {kind: sql.instance(Account, rest[i * n:(i + 1) * n]) for i, kind in enumerate(hold_kinds)}
    return payment, accounts, rest[-1] is not None


def _parts_with_channel_legs(payment: Payment) -> tuple[list[PaymentPart], dict[int, int]]:
    parts, channel_legs = [], {}
    for part, rest in sql.fetch(PaymentPart, _PARTS_WITH_CHANNEL_LEGS, [RefundLeg.Status.CANCELLED, payment.pk]):
        part.payment = payment
        if part.channel_id is not None:
            part.channel = sql.instance(Channel, rest)
            channel_legs[part.pk] = rest[-1]
        parts.append(part)
    return parts, channel_legs


def _remember_legs(refund: Refund, legs: list[RefundLeg]) -> None:
    """What prefetch_related would leave: `refund.legs.all()` answers these without a query."""
    queryset = refund.legs.all()
    queryset._result_cache = legs
    queryset._prefetch_done = True
    refund._prefetched_objects_cache = {"legs": queryset}


def refund_create(
    *,
    merchant: Merchant,
    out_trade_no: str,
    out_refund_no: str,
    amount: int,
    actor: str,
    reason: str = "",
    direction: str = Refund.Direction.ORIGINAL,
    source: str = Refund.Source.MERCHANT,
    notify_url: str = "",
    user=None,
    now: datetime.datetime | None = None,
) -> tuple[Refund, bool]:
    """Accept a refund request: validate, allocate, route, decide, and hold the money.

    Returns (refund, created). Idempotent on (merchant, out_refund_no): the same request
    returns the stored refund, a different one raises OutRefundNoConflict.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise errors.InvalidAmount("amount must be a positive integer of minor units")
    if direction not in Refund.Direction.values:
        raise errors.InvalidRequest(f"direction must be one of {', '.join(Refund.Direction.values)}")
    if source not in Refund.Source.values:
        raise errors.InvalidRequest(f"source must be one of {', '.join(Refund.Source.values)}")
    if not out_refund_no or len(out_refund_no) > 64:
        raise errors.InvalidRequest("out_refund_no is required (at most 64 characters)")
    now = now or timezone.now()
    request_hash = _fingerprint(
        out_trade_no=out_trade_no, amount=amount, direction=direction, source=source, reason=reason,
        notify_url=notify_url,
    )

    try:
        return _refund_create_locked(
            merchant=merchant, out_trade_no=out_trade_no, out_refund_no=out_refund_no, amount=amount,
            actor=actor, reason=reason, direction=direction, source=source, notify_url=notify_url,
            user=user, now=now, request_hash=request_hash,
        ), True
    except _Replay as found:
        return found.refund, False
    except IntegrityError:
        # The same out_refund_no committed by a concurrent request after our payment lock's snapshot.
        try:
            _raise_if_replay(merchant, out_refund_no, request_hash)
        except _Replay as found:
            return found.refund, False
        raise
    except money.InsufficientBalance as short:
        money.shortfall_record(merchant=merchant, account=short.account, amount=short.needed, out_refund_no=out_refund_no)
        raise errors.InsufficientBalance(
            f"the merchant's {short.account.get_kind_display().lower()} account cannot cover {short.needed} "
            f"{short.account.currency}: top it up"
        ) from None


class _Replay(Exception):
    """Raised when the request turns out to be a replay: the stored refund is the answer."""

    def __init__(self, refund: Refund):
        self.refund = refund


def _raise_if_replay(merchant: Merchant, out_refund_no: str, request_hash: str) -> None:
    """_Replay if this out_refund_no was used for the same request, OutRefundNoConflict if for another."""
    existing = _refund_by_no(merchant, out_refund_no)
    if existing is None:
        return
    if existing.request_hash != request_hash:
        raise errors.OutRefundNoConflict(f"out_refund_no {out_refund_no} was used for a different request")
    raise _Replay(existing)


@transaction.atomic
def _refund_create_locked(
    *, merchant, out_trade_no, out_refund_no, amount, actor, reason, direction, source, notify_url, user, now,
    request_hash,
) -> Refund:
    hold_kinds = (merchant.refund_source, Account.Kind.REFUND_HOLD)
    payment, hold_accounts, used = _lock_payment(merchant, out_trade_no, out_refund_no, hold_kinds)
    if payment is None or used:
        _raise_if_replay(merchant, out_refund_no, request_hash)
    if payment is None:
        raise errors.PaymentNotFound(f"no payment {out_trade_no} for merchant {merchant.code}")
    if amount > payment.refundable_amount:
        # A concurrent request with the same out_refund_no may be what used the amount up: we
        # waited for it on the payment's lock, so it is visible now and is answered as a replay.
        _raise_if_replay(merchant, out_refund_no, request_hash)
        raise errors.AmountExceedsRefundable(
            f"amount {amount} exceeds the refundable {payment.refundable_amount} of payment {out_trade_no}"
        )
    parts, channel_legs = _parts_with_channel_legs(payment)
    shares = allocate(parts=parts, amount=amount, strategy=merchant.allocation_strategy)
    planned, coupon_share = plan_legs(
        payment=payment, parts=parts, shares=shares, direction=direction, fallback=merchant.fallback_route, now=now,
        channel_legs=channel_legs,
    )
    money_out = sum(leg.amount for leg in planned)
    hold = hold_for(payment=payment, money_out=money_out, now=now)
    decision = risk.assess_refund(merchant=merchant, payment=payment, amount=amount, source=source, direction=direction)
    status = {
        risk.APPROVE: Refund.Status.APPROVED, risk.REVIEW: Refund.Status.PENDING_REVIEW, risk.REJECT: Refund.Status.REJECTED,
    }[decision.outcome]
    counts = status != Refund.Status.REJECTED

    refund = Refund(
        merchant=merchant, payment=payment, out_refund_no=out_refund_no, amount=amount, currency=payment.currency,
        direction=direction, source=source, reason=reason, notify_url=notify_url, status=status,
        failure_reason="RISK_REJECTED" if not counts else "",
        estimated_arrival=estimate_arrival(planned, today=timezone.localdate(now)),
        coupon_not_returned=coupon_share, hold_amount=hold if counts else 0, hold_currency=payment.settlement_currency,
        hold_account_kind=merchant.refund_source, risk_outcome=decision.outcome, risk_reasons=decision.reasons,
        request_hash=request_hash, created_by=actor, created_by_user=user,
        allocation={str(p.pk): s for p, s in zip(parts, shares, strict=True) if s},
    )
    sql.insert([refund])
    # Creation is no transition: the merchant's and marketing's notices hang on post_save.
    post_save.send(sender=Refund, instance=refund, created=True, update_fields=None, raw=False, using=refund._state.db)
    leg_status = RefundLeg.Status.QUEUED if status == Refund.Status.APPROVED else RefundLeg.Status.PENDING
    if not counts:
        leg_status = RefundLeg.Status.CANCELLED
    hold_shares = split_proportionally(refund.hold_amount, [leg.amount for leg in planned])
    legs = [
        RefundLeg(
            refund=refund, payment_part=leg.part, route=leg.route, channel=leg.channel, amount=leg.amount,
            currency=payment.currency, hold_amount=h, status=leg_status, fallback_reason=leg.fallback_reason,
        )
        for leg, h in zip(planned, hold_shares, strict=True)
    ]
    sql.insert(legs)
    _remember_legs(refund, legs)
    sql.insert(
        [
            RefundEvent(
                refund=refund, kind=RefundEvent.Kind.CREATED, actor=actor, to_status=status, reason=reason,
                data={"amount": amount, "direction": direction, "source": source, "breakdown": breakdown(refund, legs),
                      "hold": {"amount": refund.hold_amount, "currency": refund.hold_currency, "account": merchant.refund_source}},
            ),
            RefundEvent(
                refund=refund, kind=RefundEvent.Kind.RISK, actor="risk", to_status=status,
                reason="; ".join(decision.reasons) or "no rule flagged this refund",
                data={"outcome": decision.outcome, "reasons": decision.reasons},
            ),
        ]
    )
    if not counts:
        return refund

    sql.execute(_PAYMENT_REFUNDED, [amount, payment.pk])
    taken = {part.pk: share for part, share in zip(parts, shares, strict=True) if share}
    # Increments (not values computed in Python), all parts in one UPDATE.
    sql.execute(
        f"UPDATE {sql.table(PaymentPart)} SET refunded_amount = refunded_amount + CASE id "
        f"{' '.join(['WHEN %s THEN %s'] * len(taken))} END WHERE id IN ({', '.join(['%s'] * len(taken))})",
        [*(v for pk, share in taken.items() for v in (pk, share)), *taken],
    )
    for part in parts:
        part.refunded_amount += taken.get(part.pk, 0)
    postings: list[money.Posting] = []
    if refund.hold_amount:
        accounts = hold_accounts or money.merchant_accounts(merchant, refund.hold_currency, hold_kinds)
        postings.append(money.Posting(
            kind=LedgerTransaction.Kind.REFUND_HOLD,
            lines=[
                money.Line(accounts[merchant.refund_source], -refund.hold_amount),
                money.Line(accounts[Account.Kind.REFUND_HOLD], refund.hold_amount),
            ],
            reference=f"refund:{refund.pk}", description=f"hold for {merchant.code}/{out_refund_no}", created_by=actor,
        ))
    if status == Refund.Status.APPROVED:
        # A balance leg is paid at once out of the hold taken just above: posted in one batch with
        # it, so the hold account is never debited before it is credited and every account row is
        # locked once, in the ledger's order.
        _start_internal_legs(refund, legs, by=actor, now=now, postings=postings)
    # Last, and as briefly as possible: the merchant's shared account rows.
    if postings:
        money.ledger_post_many(postings)
    return refund


def breakdown(refund: Refund, legs: list[RefundLeg]) -> dict[str, int]:
    """Where the refund's amount goes: `channel` (original route), `balance`, `manual`, `coupon_not_returned`."""
    result: dict[str, int] = {}
    for leg in legs:
        if leg.status == RefundLeg.Status.CANCELLED and refund.status != Refund.Status.REJECTED:
            continue
        key = leg.route if leg.route in RefundLeg.INTERNAL_ROUTES else "channel"
        result[key] = result.get(key, 0) + leg.amount
    if refund.coupon_not_returned:
        result["coupon_not_returned"] = refund.coupon_not_returned
    return result


def _start_internal_legs(
    refund: Refund, legs: list[RefundLeg], *, by: str, now, postings: list[money.Posting] | None = None
) -> None:
    """Approved legs that need no channel: balance is booked at once; manual waits for a payout.
    Channel legs stay QUEUED: committed with this transaction, they are the dispatch outbox that
    the relay (refunds.dispatch.sweep, every second) hands to the workers."""
    changed = False
    for leg in legs:
        if leg.status != RefundLeg.Status.QUEUED:
            continue
        if leg.is_channel:
            continue
        if leg.route == RefundLeg.Route.BALANCE:
            leg.mark_succeeded(by=by, reason="credited to the user's platform balance", at=now)
            _book_leg_paid(refund, leg, by=by, postings=postings)
            leg.save()
            changed = True
        elif leg.route == RefundLeg.Route.MANUAL:
            leg.route_to_manual_payout(by=by, reason=leg.fallback_reason or "routed to manual payout")
            leg.save()
            changed = True
    if changed or not legs:
        _sync_refund_status(refund, legs, by=by, now=now)


def leg_reroute_to_fallback(*, refund: Refund, legs: list[RefundLeg], leg: RefundLeg, reason: str, by: str, now) -> None:
    """A queued channel leg that can no longer go to its channel (its window passed while it
    waited) takes the merchant's fallback route. The caller holds the locks."""
    leg.route = refund.merchant.fallback_route
    leg.channel = None
    leg.fallback_reason = reason
    leg.save(update_fields=["route", "channel", "fallback_reason", "updated_at"])
    RefundEvent.objects.create(
        refund=refund, leg=leg, kind=RefundEvent.Kind.NOTE, actor=by,
        reason=f"{reason}: rerouted to {leg.route}", data={"fallback_reason": reason, "route": leg.route},
    )
    _start_internal_legs(refund, legs, by=by, now=now)


def _book_leg_paid(
    refund: Refund, leg: RefundLeg, *, by: str, paid_by_hand: bool = False, postings: list[money.Posting] | None = None
) -> None:
    """The hold behind a leg leaves the merchant: to the user's balance, the channel, or a manual payout.

    With `postings`, the movement is added to the caller's batch instead of posted now."""
    payment = refund.payment
    if leg.route == RefundLeg.Route.BALANCE:
        destination = money.platform_account(Account.Kind.USER_BALANCE, leg.currency, user_id=payment.user_id)
    elif paid_by_hand or leg.route == RefundLeg.Route.MANUAL:
        destination = money.platform_account(Account.Kind.MANUAL_PAYOUTS, leg.currency)
    else:
        destination = money.platform_account(Account.Kind.CHANNEL_REFUNDS, leg.currency, sub_ledger=leg.route)
    hold = money.merchant_accounts(refund.merchant, refund.hold_currency, [Account.Kind.REFUND_HOLD])[Account.Kind.REFUND_HOLD]
    lines = [money.Line(destination, leg.amount)]
    if leg.hold_amount:
        lines.append(money.Line(hold, -leg.hold_amount))
    if refund.hold_currency != leg.currency:
        if leg.hold_amount:
            lines.append(money.Line(money.platform_account(Account.Kind.FX, refund.hold_currency), leg.hold_amount))
        lines.append(money.Line(money.platform_account(Account.Kind.FX, leg.currency), -leg.amount))
    posting = money.Posting(
        kind=LedgerTransaction.Kind.REFUND_PAID, lines=lines, reference=f"refund:{refund.pk}",
        description=f"leg {leg.pk} paid via {'manual payout' if paid_by_hand else leg.route}", created_by=by,
    )
    if postings is None:
        money.ledger_post_many([posting])
    else:
        postings.append(posting)


def _derive_status(legs: list[RefundLeg]) -> str:
    statuses = [leg.status for leg in legs if leg.status != RefundLeg.Status.CANCELLED]
    if all(s == RefundLeg.Status.SUCCEEDED for s in statuses):
        return Refund.Status.SUCCEEDED
    if RefundLeg.Status.FAILED in statuses:
        return Refund.Status.FAILED
    if all(s == RefundLeg.Status.QUEUED for s in statuses):
        return Refund.Status.APPROVED
    if RefundLeg.Status.PROCESSING in statuses or RefundLeg.Status.QUEUED in statuses:
        return Refund.Status.PROCESSING
    return Refund.Status.MANUAL_PAYOUT


def _sync_refund_status(refund: Refund, legs: list[RefundLeg], *, by: str, now, reason: str = "") -> None:
    """A leg's state drives its refund's."""
    target = _derive_status(legs)
    if target == refund.status:
        return
    if target == Refund.Status.SUCCEEDED:
        refund.mark_succeeded(by=by, reason=reason or "every leg succeeded", at=now)
    elif target == Refund.Status.FAILED:
        failed = next(leg for leg in legs if leg.status == RefundLeg.Status.FAILED)
        refund.mark_failed(by=by, reason=reason or f"leg via {failed.route} failed", failure_reason=failed.failure_reason)
    elif target == Refund.Status.PROCESSING:
        refund.mark_processing(by=by, reason=reason)
    elif target == Refund.Status.MANUAL_PAYOUT:
        refund.mark_manual_payout(by=by, reason=reason or "waiting for a manual payout")
    refund.save()


def _lock_refund(refund_id) -> tuple[Refund, list[RefundLeg]]:
    """Lock a refund's payment, then the refund, then its legs (the fixed order)."""
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise errors.RefundNotFound(f"no refund {refund_id}")
    Payment.objects.select_for_update().filter(pk=payment_id).first()
    # of=("self",): the joined merchant and channel rows are shared by every refund; only read them.
    refund = Refund.objects.select_for_update(of=("self",)).select_related("payment", "merchant").get(pk=refund_id)
    legs = list(refund.legs.select_for_update(of=("self",)).select_related("channel").order_by("id"))
    return refund, legs


@transaction.atomic
def refund_approve(*, refund_id, by: str, user=None, reason: str = "", now=None) -> Refund:
    """A reviewer lets a flagged refund through. Four eyes: not the person who created it."""
    now = now or timezone.now()
    refund, legs = _lock_refund(refund_id)
    if refund.status != Refund.Status.PENDING_REVIEW:
        raise errors.InvalidState(f"refund is {refund.status}, only a refund pending review can be approved")
    if user is not None and refund.created_by_user_id == user.pk:
        raise errors.FourEyesViolation()
    refund.approve(by=by, reason=reason)
    refund.estimated_arrival = estimate_arrival(legs, today=timezone.localdate(now))
    refund.save()
    for leg in legs:
        if leg.status == RefundLeg.Status.PENDING:
            leg.queue(by=by)
            leg.save()
    _start_internal_legs(refund, legs, by=by, now=now)
    return refund


def _release(refund: Refund, legs: list[RefundLeg], *, by: str) -> None:
    """Give the payment its refundable amount back and the merchant its hold."""
    Payment.objects.filter(pk=refund.payment_id).update(refunded_amount=F("refunded_amount") - refund.amount)
    parts = {p.pk: p for p in PaymentPart.objects.filter(pk__in=[int(k) for k in refund.allocation])}
    for part_id, share in refund.allocation.items():
        parts[int(part_id)].refunded_amount -= share
    PaymentPart.objects.bulk_update(parts.values(), ["refunded_amount"])
    for leg in legs:
        if leg.status in (RefundLeg.Status.PENDING, RefundLeg.Status.QUEUED):
            leg.cancel(by=by)
            leg.save()
    if refund.hold_amount:
        accounts = money.merchant_accounts(
            refund.merchant, refund.hold_currency, [refund.hold_account_kind, Account.Kind.REFUND_HOLD]
        )
        money.ledger_post(
            kind=LedgerTransaction.Kind.HOLD_RELEASE,
            lines=[
                money.Line(accounts[Account.Kind.REFUND_HOLD], -refund.hold_amount),
                money.Line(accounts[refund.hold_account_kind], refund.hold_amount),
            ],
            reference=f"refund:{refund.pk}", description=f"release {refund}", created_by=by,
        )


@transaction.atomic
def refund_reject(*, refund_id, by: str, reason: str, user=None) -> Refund:
    """A reviewer refuses a flagged refund: the hold goes back, the payment is refundable again."""
    if not reason.strip():
        raise errors.InvalidRequest("a reason is required to reject a refund")
    refund, legs = _lock_refund(refund_id)
    if refund.status != Refund.Status.PENDING_REVIEW:
        raise errors.InvalidState(f"refund is {refund.status}, only a refund pending review can be rejected")
    refund.reject(by=by, reason=reason)
    refund.save()
    _release(refund, legs, by=by)
    return refund


@transaction.atomic
def refund_cancel(*, refund_id, by: str, reason: str) -> Refund:
    """Withdraw an approved refund before any leg has been paid or sent."""
    if not reason.strip():
        raise errors.InvalidRequest("a reason is required to cancel a refund")
    refund, legs = _lock_refund(refund_id)
    if refund.status != Refund.Status.APPROVED or any(leg.status != RefundLeg.Status.QUEUED for leg in legs):
        raise errors.InvalidState("only an approved refund none of whose legs has started can be cancelled")
    refund.cancel(by=by, reason=reason)
    refund.save()
    _release(refund, legs, by=by)
    return refund


def _lock_leg(leg_id) -> tuple[Refund, list[RefundLeg], RefundLeg]:
    refund_id = RefundLeg.objects.filter(pk=leg_id).values_list("refund_id", flat=True).first()
    if refund_id is None:
        raise errors.RefundNotFound(f"no refund leg {leg_id}")
    refund, legs = _lock_refund(refund_id)
    return refund, legs, next(leg for leg in legs if leg.pk == leg_id)


@transaction.atomic
def leg_submit(*, leg_id, by: str, reason: str = "", now=None) -> RefundLeg:
    """A channel leg leaves for its channel (the channels' dispatch calls this)."""
    refund, legs, leg = _lock_leg(leg_id)
    leg.mark_submitted(by=by, reason=reason)
    leg.save()
    _sync_refund_status(refund, legs, by=by, now=now or timezone.now())
    return leg


@transaction.atomic
def leg_record_success(*, leg_id, by: str, channel_refund_id: str = "", reason: str = "", now=None) -> RefundLeg:
    """The money reached the user: the hold behind the leg is consumed."""
    now = now or timezone.now()
    refund, legs, leg = _lock_leg(leg_id)
    if leg.status == RefundLeg.Status.SUCCEEDED:
        return leg  # already booked: a duplicate answer changes nothing
    paid_by_hand = leg.status == RefundLeg.Status.MANUAL_PAYOUT
    leg.mark_succeeded(by=by, reason=reason, at=now)
    if channel_refund_id:
        leg.channel_refund_id = channel_refund_id
    leg.save()
    _book_leg_paid(refund, leg, by=by, paid_by_hand=paid_by_hand)
    _sync_refund_status(refund, legs, by=by, now=now)
    return leg


@transaction.atomic
def leg_record_failure(*, leg_id, by: str, failure_reason: str, reason: str = "", now=None) -> RefundLeg:
    """The channel refused the leg. The money stays held: the user is still owed it (S11)."""
    refund, legs, leg = _lock_leg(leg_id)
    if leg.status == RefundLeg.Status.FAILED:
        return leg
    leg.mark_failed(by=by, reason=reason, failure_reason=failure_reason)
    leg.save()
    _sync_refund_status(refund, legs, by=by, now=now or timezone.now())
    return leg


@transaction.atomic
def leg_confirm_failure(*, leg_id, by: str, reason: str, now=None) -> RefundLeg:
    """Pre-failure rule (S14): only a confirmed failure may be paid another way. Finance calls
    this explicitly today; reconciliation will call it when the statement confirms the failure."""
    if not reason.strip():
        raise errors.InvalidRequest("a reason is required to confirm a failure")
    refund, legs, leg = _lock_leg(leg_id)
    if leg.status != RefundLeg.Status.FAILED:
        raise errors.InvalidState(f"leg is {leg.status}; only a failed leg's failure can be confirmed")
    leg.route_to_manual_payout(by=by, reason=f"failure confirmed: {reason}")
    leg.save()
    _sync_refund_status(refund, legs, by=by, now=now or timezone.now())
    return leg
