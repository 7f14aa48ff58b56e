"""The scheduled jobs, as rows of django-celery-beat's database schedule (editable in the admin)."""

import json

from django.db import migrations

INTERVALS = [
    # name, task, every (seconds)
    ("Dispatch sweep: re-send approved legs a lost message left behind", "refunds.tasks.dispatch_sweep", 30),
    ("Unknown-result janitor: query channels about unanswered legs", "refunds.tasks.unknown_result_janitor", 60),
    ("Auto-refund expired unused vouchers", "refunds.tasks.auto_refund_expired_vouchers", 3600),
]
CRONTABS = [
    # name, task, minute, hour
    ("T+1 settlement: yesterday's collections to cash", "merchants.tasks.settle_t1", "30", "0"),
    ("Daily list of merchants refused for insufficient balance", "merchants.tasks.shortfall_daily_list", "0", "8"),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in INTERVALS:
        schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule, "args": json.dumps([])})
    for name, task, minute, hour in CRONTABS:
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="Asia/Shanghai"
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "crontab": schedule, "args": json.dumps([])})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[n for n, *_ in INTERVALS + CRONTABS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0002_alert_submissionattempt_refundleg_check_count_and_more"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
