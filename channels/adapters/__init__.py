"""Channel adapters: one module per adapter, found by the name in Channel.adapter."""

from importlib import import_module

from .base import (
    Adapter,
    ChannelError,
    ChannelResult,
    InvalidNotification,
    Notification,
    Outcome,
    SubmitRequest,
)

__all__ = [
    "Adapter", "ChannelError", "ChannelResult", "InvalidNotification", "Notification", "Outcome", "SubmitRequest",
    "get_adapter",
]

_REGISTRY = {"sandbox": "channels.adapters.sandbox"}


def get_adapter(channel) -> Adapter:
    module_path = _REGISTRY.get(channel.adapter)
    if module_path is None:
        raise ChannelError(f"channel {channel.code}: unknown adapter {channel.adapter!r}", permanent=True)
    return import_module(module_path).adapter_for(channel)
