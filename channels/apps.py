from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # "channels" is also the import name of Django Channels (never installed here); the
    # explicit label keeps table names and app references unambiguous.
    name = "channels"
    label = "payment_channels"
    verbose_name = "Payment channels"
