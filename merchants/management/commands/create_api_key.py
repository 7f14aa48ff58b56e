"""`create_api_key CODE --scope refunds|payments`: the new key alone on the last line."""

from django.core.management.base import BaseCommand, CommandError

from merchants import services
from merchants.models import ApiKey, Merchant


class Command(BaseCommand):
    help = "Create an API key for a merchant. Prints the key alone on the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("code", help="The merchant's code.")
        parser.add_argument(
            "--scope", required=True, choices=ApiKey.Scope.values,
            help="refunds: the merchant's own refunds and payments; payments: the payment core reports payments.",
        )
        parser.add_argument("--name", default="", help="A label to recognise the key by.")

    def handle(self, *args, **options):
        merchant = Merchant.objects.filter(code=options["code"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with code {options['code']!r}")
        if options["scope"] not in ApiKey.Scope.values:
            raise CommandError(f"--scope must be one of {', '.join(ApiKey.Scope.values)}")
        key, raw = services.api_key_create(merchant=merchant, scope=options["scope"], name=options["name"])
        self.stdout.write(
            f"Created a {key.scope} key for {merchant.code} (prefix {key.prefix}). "
            "It is shown only now; only its hash is stored:"
        )
        self.stdout.write(raw)
