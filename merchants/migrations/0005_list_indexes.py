"""Indexes for the admin's filters of the ledger and the webhook outbox (issue "screens", item 8:
every list answers in under 150 ms on a million refunds; bench/list_screens.py measures it).

Built CONCURRENTLY on PostgreSQL: the tables keep taking writes meanwhile (hence atomic = False).
"""

from django.db import migrations, models

from merchants.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('merchants', '0004_webhook_sweep_job'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='ledgertransaction',
            index=models.Index(fields=['kind', '-id'], name='ledgertx_kind_recent'),
        ),
        AddIndexConcurrently(
            model_name='webhookdelivery',
            index=models.Index(fields=['event', '-id'], name='delivery_event_recent'),
        ),
        AddIndexConcurrently(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('audience', 'marketing')), fields=['-id'], name='delivery_marketing_recent'),
        ),
    ]
