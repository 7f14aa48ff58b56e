"""The roles as groups with their permissions (refunds/roles.py is the matrix).

Model permissions are normally made after all migrations (post_migrate); they are made here
first so that the groups get them on a fresh database too.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from refunds import roles


SEARCH_INDEXES = [
    ("refund_search_out_refund_no", "refunds_refund", "out_refund_no"),
    ("payment_search_out_trade_no", "refunds_payment", "out_trade_no"),
    ("leg_search_channel_refund_id", "refunds_refundleg", "channel_refund_id"),
]


def forwards(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles.sync(apps, exact=True)


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.filter(name__in=list(roles.ROLE_PERMISSIONS)).delete()
    for app_label, _model, codename, _name in roles.CUSTOM_PERMISSIONS:
        Permission.objects.filter(content_type__app_label=app_label, codename=codename).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("merchants", "0002_settlement_shortfalldigest"),
        ("payment_channels", "0002_channelnotification_sandboxpayout"),
        ("refunds", "0003_periodic_jobs"),
    ]

    # The search box looks refunds up by ids a customer reads out, across merchants; the unique
    # constraints lead with the merchant, so these ids get indexes of their own. Raw SQL (both
    # SQLite and PostgreSQL) with no model state: the models stay as their owners wrote them.
    operations = [
        migrations.RunPython(forwards, backwards),
        *[
            migrations.RunSQL(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})", f"DROP INDEX IF EXISTS {name}"
            )
            for name, table, column in SEARCH_INDEXES
        ],
    ]
