"""Complaint, manual payout and configuration history screens (mounted at the site root)."""

from django.urls import path

from . import views_audit, views_complaints, views_payouts

urlpatterns = [
    path("complaints/", views_complaints.complaint_list, name="complaints"),
    path("complaints/new/", views_complaints.complaint_new, name="complaint-new"),
    path("complaints/<int:pk>/", views_complaints.complaint_detail, name="complaint-detail"),
    path("complaints/<int:pk>/assign/", views_complaints.complaint_assign, name="complaint-assign"),
    path("complaints/<int:pk>/notes/", views_complaints.complaint_note, name="complaint-note"),
    path("complaints/<int:pk>/due/", views_complaints.complaint_due, name="complaint-due"),
    path("complaints/<int:pk>/resolve/", views_complaints.complaint_finish, {"action": "resolve"}, name="complaint-resolve"),
    path("complaints/<int:pk>/close/", views_complaints.complaint_finish, {"action": "close"}, name="complaint-close"),
    path("complaints/<int:pk>/refund/", views_complaints.complaint_start_refund, name="complaint-refund"),
    path("payouts/", views_payouts.payout_list, name="payouts"),
    path("payouts/legs/<int:leg_id>/", views_payouts.payout_leg, name="payout-leg"),
    path("payouts/legs/<int:leg_id>/card/", views_payouts.payout_record_card, name="payout-record-card"),
    path("payouts/legs/<int:leg_id>/confirm-failure/", views_payouts.payout_confirm_failure, name="payout-confirm-failure"),
    path("payouts/<int:payout_id>/approve/", views_payouts.payout_approve, name="payout-approve"),
    path("payouts/<int:payout_id>/send-back/", views_payouts.payout_send_back, name="payout-send-back"),
    path("config-changes/", views_audit.config_changes, name="config-changes"),
]
