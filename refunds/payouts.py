"""Use cases of manual payouts (财务打款, S11): a leg that cannot go back the original way is paid
by finance to a bank card the user gives customer service.

- An agent records the card (holder, number, bank, personal or corporate account, phone: S24,
  S25). The number is checked (Luhn) and stored encrypted; it is shown and logged only masked.
- Someone else, from finance, approves and records the bank transfer's reference; only then
  does the leg succeed (refunds.services.leg_record_success), consuming the hold.
- A channel leg that FAILED is not paid another way until its failure is confirmed (the
  pre-failure rule, S14: refunds.services.leg_confirm_failure); a leg routed to manual payout
  from the start (its channel's window had passed) needs no confirmation.

Each runs in one transaction and takes the refund's locks in the fixed order (payment, refund,
legs) before the payout row.
"""

import logging

from django.db import transaction
from django.utils import timezone

from . import cards, errors, services
from .models import ManualPayout, Refund, RefundEvent, RefundLeg

log = logging.getLogger(__name__)


class FailureNotConfirmed(errors.RefundError):
    """The channel's failure is not confirmed yet: confirm it before paying another way (S14)."""

    code, http_status = "FAILURE_NOT_CONFIRMED", 409


class PayoutFourEyes(errors.FourEyesViolation):
    """You recorded this card: another person from finance must approve the payout."""


def _actor(user) -> str:
    return f"user:{user.get_username()}"


def _lock(leg_id) -> tuple:
    # services._lock_leg is the one place the lock order (payment, refund, legs) lives.
    return services._lock_leg(leg_id)


def _note(refund, leg, *, user, reason: str, data: dict) -> None:
    RefundEvent.objects.create(
        refund=refund, leg=leg, kind=RefundEvent.Kind.NOTE, actor=_actor(user), reason=reason, data=data
    )


def payout_startable(leg: RefundLeg) -> tuple[bool, str]:
    """Whether a card may be recorded for this leg now, and if not, why (shown on the screen)."""
    if leg.status == RefundLeg.Status.FAILED:
        return False, FailureNotConfirmed.__doc__
    if leg.status != RefundLeg.Status.MANUAL_PAYOUT:
        return False, f"the leg is {leg.get_status_display().lower()}, not awaiting a manual payout"
    payout = getattr(leg, "manual_payout", None)
    if payout is not None and payout.status == ManualPayout.Status.PAID:
        return False, "already paid"
    return True, ""


@transaction.atomic
def payout_record_card(
    *, leg_id, user, holder_name: str, card_number: str, bank_name: str, account_type: str, phone: str, now=None,
) -> ManualPayout:
    """Record (or correct, before finance has paid) the bank card a leg is paid to."""
    now = now or timezone.now()
    digits = cards.validate(card_number)  # CardNumberError: the caller shows it beside the field
    if account_type not in ManualPayout.AccountType.values:
        # Never guessed from the holder's name (S25): the user says which it is.
        raise errors.InvalidRequest("ask the user whether the account is personal or corporate")
    holder_name, bank_name, phone = (holder_name or "").strip(), (bank_name or "").strip(), (phone or "").strip()
    if not holder_name or not bank_name or not phone:
        raise errors.InvalidRequest("the holder's name, the bank and the phone number are required")

    refund, legs, leg = _lock(leg_id)
    if leg.status == RefundLeg.Status.FAILED:
        raise FailureNotConfirmed()
    if leg.status != RefundLeg.Status.MANUAL_PAYOUT:
        raise errors.InvalidState(f"the leg is {leg.status}; only a leg awaiting a manual payout is paid by hand")
    payout = ManualPayout.objects.select_for_update().filter(leg=leg).first()
    if payout is None:
        payout = ManualPayout(leg=leg, refund=refund, amount=leg.amount, currency=leg.currency)
    elif payout.status == ManualPayout.Status.PAID:
        raise errors.InvalidState("this payout is already paid")
    else:
        payout.record_again()
    payout.holder_name, payout.bank_name, payout.account_type, payout.phone = holder_name, bank_name, account_type, phone
    payout.set_card_number(digits)
    payout.recorded_by, payout.recorded_at = user, now
    payout.save()
    _note(
        refund, leg, user=user,
        reason=f"bank card recorded for manual payout: {payout.card_mask} ({payout.get_account_type_display().lower()}), "
        f"{bank_name}, holder {holder_name}",
        data={"payout": payout.pk, "card": payout.card_mask, "account_type": account_type, "bank": bank_name},
    )
    log.info("payout %s: card %s recorded for leg %s by %s", payout.pk, payout.card_mask, leg.pk, _actor(user))
    return payout


def _lock_payout_awaiting_approval(payout_id) -> tuple[Refund, RefundLeg, ManualPayout]:
    """Lock the payout's refund and legs (the usual order), then the payout, which must await finance."""
    leg_id = ManualPayout.objects.filter(pk=payout_id).values_list("leg_id", flat=True).first()
    if leg_id is None:
        raise errors.InvalidRequest(f"no payout {payout_id}")
    refund, _legs, leg = _lock(leg_id)
    payout = ManualPayout.objects.select_for_update().get(pk=payout_id)
    if payout.status != ManualPayout.Status.AWAITING_APPROVAL:
        raise errors.InvalidState(f"the payout is {payout.get_status_display().lower()}")
    return refund, leg, payout


@transaction.atomic
def payout_approve(*, payout_id, transfer_reference: str, user, now=None) -> ManualPayout:
    """Finance paid the card by bank transfer: the leg succeeds and the hold is consumed."""
    now = now or timezone.now()
    transfer_reference = (transfer_reference or "").strip()
    if not transfer_reference:
        raise errors.InvalidRequest("the bank transfer's reference is required")
    refund, leg, payout = _lock_payout_awaiting_approval(payout_id)
    if payout.recorded_by_id == user.pk:
        raise PayoutFourEyes()
    if leg.status != RefundLeg.Status.MANUAL_PAYOUT:
        raise errors.InvalidState(f"the leg is {leg.status}, not awaiting a manual payout")
    if ManualPayout.objects.filter(transfer_reference=transfer_reference).exclude(pk=payout.pk).exists():
        raise errors.InvalidRequest("this transfer reference already paid another payout")
    payout.approve(by_user=user, transfer_reference=transfer_reference, at=now)
    payout.save()
    _note(
        refund, leg, user=user,
        reason=f"manual payout approved and paid to {payout.card_mask}, transfer {transfer_reference}",
        data={"payout": payout.pk, "card": payout.card_mask, "transfer_reference": transfer_reference},
    )
    services.leg_record_success(
        leg_id=leg.pk, by=_actor(user), reason=f"paid by hand to {payout.card_mask}, transfer {transfer_reference}",
        now=now,
    )
    log.info("payout %s paid to %s, transfer %s, by %s", payout.pk, payout.card_mask, transfer_reference, _actor(user))
    return payout


@transaction.atomic
def payout_send_back(*, payout_id, reason: str, user) -> ManualPayout:
    """Finance will not pay to this card (the details look wrong): customer service records it again."""
    reason = (reason or "").strip()
    if not reason:
        raise errors.InvalidRequest("a reason is required to send a payout back")
    refund, leg, payout = _lock_payout_awaiting_approval(payout_id)
    payout.send_back(reason=reason)
    payout.save()
    _note(
        refund, leg, user=user, reason=f"payout to {payout.card_mask} sent back to customer service: {reason}",
        data={"payout": payout.pk, "card": payout.card_mask},
    )
    return payout


def payout_confirm_failure(*, leg_id, reason: str, user, now=None) -> RefundLeg:
    """Finance confirms a channel leg's failure (S14): it may now be paid by hand."""
    return services.leg_confirm_failure(leg_id=leg_id, by=_actor(user), reason=reason or "", now=now)
