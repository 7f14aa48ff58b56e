from django.apps import AppConfig


class MerchantApiConfig(AppConfig):
    """The merchant API (API.md). An app of its own only for its rate-limit counters."""

    name = "refunds.api"
    label = "merchant_api"
    verbose_name = "Merchant API"
