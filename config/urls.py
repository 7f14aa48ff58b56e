from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from refunds.api.channel_notify import channel_notify

urlpatterns = [
    # Sign-in, language, and the customer-service screens (home, search, review queue, refunds).
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("refunds.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/channels/<slug:code>/notify", channel_notify, name="channel-notify"),
    # Complaints, manual payouts, merchant and channel operations, configuration history.
    path("", include("refunds.urls_casework")),
    path("", include("merchants.urls")),
    path("", include("channels.urls")),
    # The merchant API; it ends with a catch-all JSON 404 for /api/v1/, so keep other
    # /api/v1/ routes above this line.
    path("", include("refunds.api.urls")),
]
