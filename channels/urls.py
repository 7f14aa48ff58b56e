"""Channel configuration screens."""

from django.urls import path

from . import views

urlpatterns = [
    path("channels/", views.channel_list, name="channel-list"),
    path("channels/<slug:code>/", views.channel_edit, name="channel-edit"),
    path("channels/<slug:code>/toggle/", views.channel_toggle, name="channel-toggle"),
]
