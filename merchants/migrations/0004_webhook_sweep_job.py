"""The webhook sweep, a row of django-celery-beat's database schedule (editable in the admin)."""

import json

from django.db import migrations

NAME = "Webhook sweep: send due retries and what a lost message left behind"
TASK = "merchants.tasks.webhook_sweep"
EVERY_SECONDS = 30


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    PeriodicTask.objects.get_or_create(name=NAME, defaults={"task": TASK, "interval": schedule, "args": json.dumps([])})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("merchants", "0003_webhookdelivery_webhookattempt"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
