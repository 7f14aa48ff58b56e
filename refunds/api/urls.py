"""/api/v1/ (API.md). Included by config/urls.py after the channels' notify route."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views
from .exceptions import not_found

urlpatterns = [
    path("api/v1/payments", views.PaymentCollectionApi.as_view(), name="api-payments"),
    path("api/v1/payments/<str:out_trade_no>", views.PaymentDetailApi.as_view(), name="api-payment"),
    path("api/v1/refunds", views.RefundCollectionApi.as_view(), name="api-refunds"),
    # Any string, not <uuid:>: a malformed id is a JSON 404 REFUND_NOT_FOUND, not Django's page.
    path("api/v1/refunds/<str:refund_id>", views.RefundDetailApi.as_view(), name="api-refund"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: every other path under /api/v1/ answers a JSON 404 in the API's error format.
    re_path(r"^api/v1/", not_found),
]
