"""`create_merchant CODE --name NAME ...`: a merchant; its webhook secret alone on the last line."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from merchants import services
from merchants.models import Merchant


def _choice(name: str, value: str, choices) -> str:
    # Options passed to call_command as keyword arguments skip argparse's `choices` check.
    if value not in choices.values:
        raise CommandError(f"--{name} must be one of {', '.join(choices.values)}, not {value!r}")
    return value


class Command(BaseCommand):
    help = "Create a merchant. Prints its webhook secret alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("code", help="The merchant's code, as API clients name it (e.g. M001).")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--refund-source", choices=Merchant.RefundSource.values, default=Merchant.RefundSource.PENDING_SETTLEMENT,
            help="The account refunds are held from (default: pending_settlement).",
        )
        parser.add_argument(
            "--fallback", choices=Merchant.FallbackRoute.values, default=Merchant.FallbackRoute.MANUAL,
            help="Where a part goes when it cannot go back the original way (default: manual).",
        )
        parser.add_argument(
            "--allocation", choices=Merchant.Allocation.values, default=Merchant.Allocation.PROPORTIONAL,
            help="How a partial refund splits across the payment's parts (default: proportional).",
        )
        parser.add_argument("--webhook-url", default="", help="Default URL for refund notifications.")
        parser.add_argument(
            "--review-threshold", type=int, default=None,
            help="Refunds above this amount (minor units) wait for review. Default: none.",
        )

    def handle(self, *args, **options):
        code = options["code"].strip()
        if not code:
            raise CommandError("CODE must not be empty")
        if Merchant.objects.filter(code=code).exists():
            raise CommandError(f"a merchant with code {code!r} already exists")
        threshold = options["review_threshold"]
        if threshold is not None and threshold < 0:
            raise CommandError("--review-threshold must be zero or more (minor units)")
        try:
            merchant = services.merchant_create(
                code=code,
                name=options["name"],
                refund_source=_choice("refund-source", options["refund_source"], Merchant.RefundSource),
                fallback_route=_choice("fallback", options["fallback"], Merchant.FallbackRoute),
                allocation_strategy=_choice("allocation", options["allocation"], Merchant.Allocation),
                webhook_url=options["webhook_url"],
                review_threshold=threshold,
            )
        except ValidationError as invalid:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in invalid.message_dict.items())
            raise CommandError(f"merchant not created: {problems}") from None
        self.stdout.write(
            f"Created merchant {merchant.code} ({merchant.name}): refund source {merchant.refund_source}, "
            f"fallback {merchant.fallback_route}, allocation {merchant.allocation_strategy}, "
            f"review threshold {merchant.review_threshold if merchant.review_threshold is not None else 'none'}."
        )
        self.stdout.write("Webhook secret (signs its refund notifications; give it to the merchant):")
        self.stdout.write(merchant.webhook_secret)
