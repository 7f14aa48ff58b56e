"""Every FSM transition of a refund or a leg writes a timeline row, in the caller's transaction."""

from django.dispatch import receiver
from django_fsm.signals import post_transition

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
