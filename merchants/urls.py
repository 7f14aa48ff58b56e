"""Merchant operations screens."""

from django.urls import path

from . import views

urlpatterns = [
    path("merchants/", views.merchant_list, name="merchant-list"),
    path("merchants/<str:code>/", views.merchant_detail, name="merchant-detail"),
    path("merchants/<str:code>/settings/", views.merchant_settings, name="merchant-settings"),
    path("merchants/<str:code>/top-up/", views.merchant_top_up, name="merchant-top-up"),
]
