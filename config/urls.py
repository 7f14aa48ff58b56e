from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from refunds.api.channel_notify import channel_notify

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/channels/<slug:code>/notify", channel_notify, name="channel-notify"),
]
