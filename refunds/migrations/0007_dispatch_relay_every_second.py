"""The dispatch sweep becomes the dispatch relay: approved channel legs are the outbox and this
job hands them to the workers, so it runs every second instead of every 30 s."""

from django.db import migrations
from django.utils import timezone

OLD_NAME = "Dispatch sweep: re-send approved legs a lost message left behind"
NEW_NAME = "Dispatch relay: hand approved channel legs to the workers"


def every(seconds: int, old: str, new: str):
    def change(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.filter(name=old, task="refunds.tasks.dispatch_sweep").update(name=new, interval=schedule)
        # A running beat reloads its schedule when this row changes.
        apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )

    return change


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0006_list_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(every(1, OLD_NAME, NEW_NAME), every(30, NEW_NAME, OLD_NAME))]
