"""POST /api/v1/channels/<code>/notify: a channel tells us a leg's result.

Kept as received (ChannelNotification), verified by the channel's adapter, and booked through
the same function as every other answer, so duplicates and stale notices change nothing.
"""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels.adapters import InvalidNotification, get_adapter
from channels.models import Channel, ChannelNotification

from .. import dispatch
from ..models import RefundLeg


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def channel_notify(request, code: str):
    channel = Channel.objects.filter(code=code).first()
    if channel is None:
        return _error(404, "CHANNEL_NOT_FOUND", f"no channel {code!r}")
    body = request.body
    record = ChannelNotification(channel_code=code, body=body.decode("utf-8", "replace")[:20000],
                                 signature=request.headers.get("X-Sandbox-Signature", "")[:200])
    try:
        notice = get_adapter(channel).parse_notification(body, request.headers)
    except InvalidNotification as exc:
        record.status, record.error = ChannelNotification.Status.REJECTED, str(exc)
        record.save()
        return _error(401, "INVALID_SIGNATURE", str(exc))
    record.refund_no = notice.refund_no[:100]
    leg_pk = RefundLeg.pk_from_submission_no(notice.refund_no)
    leg = RefundLeg.objects.filter(pk=leg_pk, route=code).only("pk").first() if leg_pk else None
    if leg is None:
        record.status = ChannelNotification.Status.UNKNOWN_REFUND
        record.save()
        return _error(404, "REFUND_NOT_FOUND", f"no refund {notice.refund_no!r} through {code}")
    outcome = dispatch.leg_apply_result(leg_id=leg.pk, result=notice.result, via="notification")
    record.status = {
        "applied": ChannelNotification.Status.APPLIED, "duplicate": ChannelNotification.Status.DUPLICATE,
        "conflict": ChannelNotification.Status.CONFLICT,
    }.get(outcome, ChannelNotification.Status.IGNORED)
    record.save()
    return JsonResponse({"status": "ok", "result": outcome})
