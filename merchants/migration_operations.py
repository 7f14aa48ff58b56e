"""Migration operations shared by the apps' migrations."""

from django.db import migrations


class AddIndexConcurrently(migrations.AddIndex):
    """AddIndex that builds the index with CREATE INDEX CONCURRENTLY on PostgreSQL, so that a big
    table (refunds, payments, the ledger) keeps taking writes while it is indexed; a plain
    CREATE INDEX elsewhere (SQLite). The migration using it must say `atomic = False`.

    Unlike django.contrib.postgres's AddIndexConcurrently, it also runs on SQLite, which the
    project supports as its embedded default.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            if schema_editor.connection.in_atomic_block:
                raise RuntimeError("CREATE INDEX CONCURRENTLY needs a migration with atomic = False")
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)

    def describe(self):
        return super().describe() + " (concurrently on PostgreSQL)"
