"""Indexes that match each list's filter and order (issue "screens", item 8: every list screen
and admin changelist answers in under 150 ms on a million refunds; bench/list_screens.py).

- payment: the admin lists newest paid first, (paid_at, id), also per currency and for the
  rare legacy and auto-refund payments (partial);
- refund: by merchant (and status) newest first; the rare sources (also per merchant) and the
  balance direction (partial); the merchant foreign key's own index goes, refund_merchant_created leads with it;
- leg: the payouts screen's tabs (failed, manual payout) by id (partial).

Built CONCURRENTLY on PostgreSQL: the tables keep taking writes meanwhile (hence atomic = False).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from merchants.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('merchants', '0005_list_indexes'),
        ('payment_channels', '0002_channelnotification_sandboxpayout'),
        ('refunds', '0005_complaints_payouts_config_changes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='refund',
            name='merchant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='refunds', to='merchants.merchant'),
        ),
        AddIndexConcurrently(
            model_name='payment',
            index=models.Index(fields=['paid_at', 'id'], name='payment_paid'),
        ),
        AddIndexConcurrently(
            model_name='payment',
            index=models.Index(fields=['currency', 'paid_at', 'id'], name='payment_currency_paid'),
        ),
        AddIndexConcurrently(
            model_name='payment',
            index=models.Index(condition=models.Q(('record_version', 1)), fields=['paid_at', 'id'], name='payment_legacy_paid'),
        ),
        AddIndexConcurrently(
            model_name='payment',
            index=models.Index(condition=models.Q(('auto_refund_on_expiry', True)), fields=['paid_at', 'id'], name='payment_auto_refund_paid'),
        ),
        AddIndexConcurrently(
            model_name='refund',
            index=models.Index(fields=['merchant', 'created_at'], name='refund_merchant_created'),
        ),
        AddIndexConcurrently(
            model_name='refund',
            index=models.Index(fields=['merchant', 'status', 'created_at'], name='refund_merchant_status'),
        ),
        AddIndexConcurrently(
            model_name='refund',
            index=models.Index(condition=models.Q(('source', 'merchant'), _negated=True), fields=['source', 'created_at'], name='refund_source_created'),
        ),
        AddIndexConcurrently(
            model_name='refund',
            index=models.Index(condition=models.Q(('source', 'merchant'), _negated=True), fields=['merchant', 'source', 'created_at'], name='refund_merchant_source'),
        ),
        AddIndexConcurrently(
            model_name='refund',
            index=models.Index(condition=models.Q(('direction', 'balance')), fields=['created_at'], name='refund_to_balance'),
        ),
        AddIndexConcurrently(
            model_name='refundleg',
            index=models.Index(condition=models.Q(('status__in', ['FAILED', 'MANUAL_PAYOUT'])), fields=['status', 'id'], name='leg_payout_work'),
        ),
    ]
