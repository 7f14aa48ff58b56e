"""The customer-service screens (mounted at the site root by config/urls.py)."""

from django.urls import path

from . import views, views_dashboard

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("preferences/", views.preferences, name="preferences"),
    path("review/", views.review_queue, name="review-queue"),
    path("review/decide/", views.review_decide, name="review-decide"),
    path("refunds/", views.refund_list, name="refund-list"),
    path("refunds/<uuid:pk>/", views.refund_detail, name="refund-detail"),
    path("dashboard/", views_dashboard.dashboard_view, name="dashboard"),
]
