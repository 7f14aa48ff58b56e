from django.apps import AppConfig


class MerchantsConfig(AppConfig):
    name = "merchants"
    verbose_name = "Merchants and money"

    def ready(self):
        from . import signals  # noqa: F401
