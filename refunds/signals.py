"""Every FSM transition of a refund or a leg writes a timeline row, in the caller's transaction;
so do the notices a refund's outcome owes the merchant and marketing (refunds/notifications.py)."""

from django.db.models.signals import post_save
from django.dispatch import receiver
from django_fsm.signals import post_transition

from . import notifications
from .models import Refund, RefundEvent, RefundLeg


@receiver(post_transition, sender=Refund)
@receiver(post_transition, sender=RefundLeg)
def record_transition(sender, instance, name, source, target, method_kwargs, **kwargs):
    refund_id = instance.pk if sender is Refund else instance.refund_id
    RefundEvent.objects.create(
        refund_id=refund_id,
        leg=instance if sender is RefundLeg else None,
        kind=RefundEvent.Kind.TRANSITION,
        actor=method_kwargs.get("by", ""),
        from_status=source,
        to_status=target,
        reason=method_kwargs.get("reason", ""),
        data={"transition": name, **({"failure_reason": method_kwargs["failure_reason"]} if method_kwargs.get("failure_reason") else {})},
    )


@receiver(post_transition, sender=Refund)
def notify_outcome(sender, instance: Refund, target, **kwargs):
    # Fired before the service saves the refund, inside its transaction: a rollback takes the notice with it.
    notifications.refund_notify_outcome(instance, target)


@receiver(post_save, sender=Refund)
def notify_created(sender, instance: Refund, created: bool, raw: bool = False, **kwargs):
    # Creation sets the first status directly, without a transition: this is where it is seen.
    if created and not raw:
        notifications.refund_notify_created(instance)
