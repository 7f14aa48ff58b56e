"""Thin tasks: take ids, call one service. Every task is idempotent; the sweep re-sends lost ones."""

from celery import shared_task

from . import dispatch


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def dispatch_leg(leg_id: int) -> str:
    return dispatch.leg_dispatch(leg_id=leg_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def query_leg(leg_id: int) -> str:
    return dispatch.leg_query(leg_id=leg_id)


@shared_task(time_limit=300)
def dispatch_sweep() -> int:
    return dispatch.relay()


@shared_task(time_limit=300)
def unknown_result_janitor() -> int:
    return dispatch.janitor()


@shared_task(time_limit=600)
def auto_refund_expired_vouchers() -> dict:
    return dispatch.auto_refund_expired_vouchers()
