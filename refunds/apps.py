from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs):
    # Permissions of models migrated after the roles migration reach the roles too (only adds).
    from . import roles

    roles.sync()


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = "Refunds"

    def ready(self):
        from . import signals  # noqa: F401
        from .config_audit import connect as connect_config_audit

        connect_config_audit()

        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="refunds.sync_roles")
