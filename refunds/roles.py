"""Who may do what: the roles (Django groups), their permissions and the screens they open.

The one place the role matrix lives. The data migration that creates the groups, the
post-migrate sync, seed_demo, the navigation and the tests all read it from here.

Model permissions come from the models (``view_refund``, ``add_fxrate``...); the custom ones
below name an action rather than a table, so they live on the content type of the model the
action is about, created by the migration instead of a ``Meta.permissions`` change.
"""

from fnmatch import fnmatchcase

from django.utils.translation import gettext_noop

# (app_label, model, codename, name)
CUSTOM_PERMISSIONS: list[tuple[str, str, str, str]] = [
    ("refunds", "refund", "review_refund", "Can approve or reject refunds waiting for review"),
    ("refunds", "refund", "confirm_failure", "Can confirm a failed refund after reconciliation"),
    ("refunds", "refund", "approve_payout", "Can approve and pay a manual payout"),
    ("refunds", "refund", "record_payout_card", "Can record the bank card for a manual payout"),
    ("refunds", "refund", "handle_complaint", "Can handle customer complaints"),
    ("refunds", "refund", "view_payouts", "Can view manual payouts"),
    ("refunds", "refund", "view_reconciliation", "Can view reconciliation"),
    ("refunds", "refund", "view_dashboard", "Can view the operations dashboard"),
    ("merchants", "merchant", "operate_merchant", "Can operate merchants (suspend, thresholds, top-ups)"),
    ("payment_channels", "channel", "configure_channel", "Can configure payment channels"),
]

AGENT = gettext_noop("Customer service agent")
SUPERVISOR = gettext_noop("Customer service supervisor")
FINANCE = gettext_noop("Finance")
OPERATIONS = gettext_noop("Merchant operations")
AUDITOR = gettext_noop("Auditor")
ADMIN = gettext_noop("Admin")

_VIEW_REFUNDS = [
    "refunds.view_payment",
    "refunds.view_paymentpart",
    "refunds.view_refund",
    "refunds.view_refundleg",
    "refunds.view_refundevent",
]
_AGENT = [*_VIEW_REFUNDS, "refunds.review_refund", "refunds.handle_complaint", "refunds.record_payout_card"]

# Role -> permissions, "app_label.codename"; shell-style patterns ("*.view_*") match every
# permission that exists when the roles are synced.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    AGENT: _AGENT,
    # A supervisor also raises refunds for customers (four eyes: someone else approves those).
    SUPERVISOR: [*_AGENT, "refunds.add_refund", "refunds.view_dashboard"],
    FINANCE: [
        *_VIEW_REFUNDS,
        "refunds.confirm_failure",
        "refunds.approve_payout",
        "refunds.view_payouts",
        "refunds.view_reconciliation",
        "refunds.view_dashboard",
        "merchants.view_merchant",
        "merchants.view_account",
        "merchants.view_ledgertransaction",
        "merchants.view_ledgerentry",
        "merchants.view_balanceshortfall",
        "merchants.view_settlement",
        "merchants.view_fxrate",
        "merchants.add_fxrate",
        "merchants.change_fxrate",
    ],
    OPERATIONS: [
        *_VIEW_REFUNDS,
        "refunds.view_dashboard",
        "merchants.operate_merchant",
        "merchants.view_merchant",
        "merchants.add_merchant",
        "merchants.change_merchant",
        "merchants.view_account",
        "merchants.view_apikey",
        "merchants.add_apikey",
        "merchants.change_apikey",
        "merchants.view_balanceshortfall",
        "merchants.view_shortfalldigest",
        "merchants.view_fxrate",
        "payment_channels.configure_channel",
        "payment_channels.view_channel",
        "payment_channels.add_channel",
        "payment_channels.change_channel",
    ],
    # Reads everything, changes nothing.
    AUDITOR: ["*.view_*"],
    ADMIN: ["*.*"],
}

# Roles whose members use the model admin (configuration and auditing).
STAFF_ROLES = {FINANCE, OPERATIONS, AUDITOR, ADMIN}

# seed_demo's logins.
DEMO_USERS: dict[str, str] = {
    "agent": AGENT,
    "supervisor": SUPERVISOR,
    "finance": FINANCE,
    "ops": OPERATIONS,
    "auditor": AUDITOR,
    "admin": ADMIN,
}

# Screen (URL name) -> permissions of which any one opens it. "staff" means user.is_staff.
SCREENS: dict[str, list[str]] = {
    "review-queue": ["refunds.review_refund"],
    "refund-list": ["refunds.view_refund"],
    "complaints": ["refunds.handle_complaint", "refunds.view_complaint"],
    "payouts": ["refunds.record_payout_card", "refunds.approve_payout", "refunds.view_payouts"],
    "reconciliation": ["refunds.confirm_failure", "refunds.view_reconciliation"],
    "merchant-list": ["merchants.operate_merchant", "merchants.view_merchant"],
    "channel-list": ["payment_channels.configure_channel", "payment_channels.view_channel"],
    "dashboard": ["refunds.view_dashboard"],
    "admin:index": ["staff"],
}


def may_open(user, screen: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    needed = SCREENS[screen]
    if "staff" in needed:
        return user.is_staff
    return any(user.has_perm(p) for p in needed)


def expand(patterns: list[str], available: list[str]) -> set[str]:
    """The permissions of `available` ("app.codename") that `patterns` name."""
    out = set()
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            out.update(name for name in available if fnmatchcase(name, pattern))
        elif pattern in available:
            out.add(pattern)
    return out


def missing(patterns: list[str], available: list[str]) -> list[str]:
    """Plain names in `patterns` that no permission answers to (a typo, or a model not migrated yet)."""
    return [p for p in patterns if not any(ch in p for ch in "*?[") and p not in available]


def sync(apps=None, *, exact: bool = False) -> None:
    """Create the custom permissions and the groups, and give each group its permissions.

    `apps` is a migration's app registry (historical models) or None for the live models.
    `exact` sets each group to the matrix (the migration); otherwise only what is missing is
    added, so permissions of models migrated later reach the roles (post_migrate).
    """
    if apps is None:
        from django.contrib.auth.models import Group, Permission
        from django.contrib.contenttypes.models import ContentType
    else:
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
        ContentType = apps.get_model("contenttypes", "ContentType")

    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        Permission.objects.update_or_create(content_type=ct, codename=codename, defaults={"name": name})

    perms = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in Permission.objects.values_list("pk", "content_type__app_label", "codename")
    }
    available = list(perms)
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [perms[name] for name in expand(patterns, available)]
        if exact:
            group.permissions.set(wanted)
        else:
            group.permissions.add(*wanted)
