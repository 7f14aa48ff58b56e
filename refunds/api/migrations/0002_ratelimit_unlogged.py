"""The rate-limit counters need no crash safety: after a crash PostgreSQL empties an UNLOGGED
table, which only restarts the current minute's counts. In exchange the UPDATE every API request
makes writes no WAL, and its commit waits for no disk flush."""

from django.db import migrations


def set_unlogged(apps, schema_editor, logged=False):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has no such thing
    table = schema_editor.quote_name(apps.get_model("merchant_api", "RateLimitWindow")._meta.db_table)
    schema_editor.execute(f"ALTER TABLE {table} SET {'LOGGED' if logged else 'UNLOGGED'}")


class Migration(migrations.Migration):
    dependencies = [("merchant_api", "0001_initial")]

    operations = [
        migrations.RunPython(set_unlogged, lambda apps, editor: set_unlogged(apps, editor, logged=True)),
    ]
