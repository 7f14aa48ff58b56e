import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from merchants.models import Account, ApiKey, LedgerTransaction, Merchant
from tests import factories as f

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().rstrip("\n").split("\n")


# create_merchant


def test_create_merchant_uses_the_documented_defaults_and_prints_the_secret_last():
    lines = run("create_merchant", "M100", "--name", "Tea House")

    merchant = Merchant.objects.get(code="M100")
    assert merchant.name == "Tea House"
    assert merchant.refund_source == Merchant.RefundSource.PENDING_SETTLEMENT
    assert merchant.fallback_route == Merchant.FallbackRoute.MANUAL
    assert merchant.allocation_strategy == Merchant.Allocation.PROPORTIONAL
    assert merchant.review_threshold is None
    assert lines[-1] == merchant.webhook_secret
    assert lines[-1].startswith("whsec_")


def test_create_merchant_takes_every_option():
    lines = run(
        "create_merchant", "M101", "--name", "Books", "--refund-source", "cash", "--fallback", "balance",
        "--allocation", "coupon_first", "--webhook-url", "https://books.example/hook", "--review-threshold", "50000",
    )

    merchant = Merchant.objects.get(code="M101")
    assert (merchant.refund_source, merchant.fallback_route, merchant.allocation_strategy) == (
        "cash", "balance", "coupon_first"
    )
    assert merchant.webhook_url == "https://books.example/hook"
    assert merchant.review_threshold == 50000
    assert lines[-1] == merchant.webhook_secret


def test_create_merchant_refuses_a_duplicate_code():
    f.merchant("M102")

    with pytest.raises(CommandError, match="already exists"):
        run("create_merchant", "M102", "--name", "Again")
    assert Merchant.objects.filter(code="M102").count() == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--refund-source", "wallet"],
        ["--fallback", "cheque"],
        ["--allocation", "random"],
        ["--review-threshold", "-1"],
        ["--review-threshold", "lots"],
        ["--webhook-url", "not a url"],
    ],
)
def test_create_merchant_refuses_a_bad_value(args):
    with pytest.raises(CommandError):
        run("create_merchant", "M103", "--name", "Bad", *args)
    assert not Merchant.objects.filter(code="M103").exists()


def test_create_merchant_requires_a_name():
    with pytest.raises(CommandError, match="--name"):
        run("create_merchant", "M104")


def test_create_merchant_checks_choices_passed_as_keyword_arguments():
    # call_command(..., refund_source=...) bypasses argparse's own check.
    with pytest.raises(CommandError, match="--refund-source"):
        call_command("create_merchant", "M105", name="Kw", refund_source="wallet", stdout=io.StringIO())


# create_api_key


@pytest.mark.parametrize("scope", ["refunds", "payments"])
def test_create_api_key_prints_the_key_last_and_stores_only_its_hash(scope):
    m = f.merchant("M200")

    lines = run("create_api_key", "M200", "--scope", scope)

    raw = lines[-1]
    key = ApiKey.objects.get(merchant=m)
    assert key.scope == scope
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(key.prefix)
    assert raw not in {key.prefix, key.key_hash, key.name}


def test_create_api_key_makes_a_new_key_each_time():
    f.merchant("M201")

    first = run("create_api_key", "M201", "--scope", "refunds")[-1]
    second = run("create_api_key", "M201", "--scope", "refunds")[-1]

    assert first != second
    assert ApiKey.objects.filter(merchant__code="M201").count() == 2


def test_create_api_key_refuses_an_unknown_merchant():
    with pytest.raises(CommandError, match="no merchant"):
        run("create_api_key", "NOPE", "--scope", "refunds")


def test_create_api_key_refuses_an_unknown_scope():
    f.merchant("M202")
    with pytest.raises(CommandError, match="scope"):
        run("create_api_key", "M202", "--scope", "admin")
    assert not ApiKey.objects.exists()


# fund_merchant


def test_fund_merchant_credits_the_account_through_the_ledger_and_prints_the_new_balance():
    m = f.merchant("M300", refund_source="cash", funded=5000)

    lines = run("fund_merchant", "M300", "--account", "cash", "--amount", "123456")

    assert f.balance(m, Account.Kind.CASH) == 128456
    assert lines[-1] == "New balance: CNY 1,284.56 (128456 minor units)"
    txn = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.TOP_UP).latest("id")
    assert sorted(e.amount for e in txn.entries.all()) == [-123456, 123456]
    assert txn.created_by.startswith("command:fund_merchant")


def test_fund_merchant_funds_pending_settlement_in_another_currency():
    m = f.merchant("M301")

    lines = run("fund_merchant", "M301", "--account", "pending_settlement", "--amount", "700", "--currency", "usd")

    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT, "USD") == 700
    assert f.balance(m, Account.Kind.PENDING_SETTLEMENT, "CNY") == 0
    assert lines[-1] == "New balance: USD 7.00 (700 minor units)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--account", "cash", "--amount", "0"], "positive"),
        (["--account", "cash", "--amount", "-5"], "positive"),
        (["--account", "cash", "--amount", "1.5"], "amount"),
        (["--account", "refund_hold", "--amount", "100"], "account"),
        (["--account", "cash", "--amount", "100", "--currency", "YUAN"], "currency"),
    ],
)
def test_fund_merchant_refuses_a_bad_value(args, message):
    m = f.merchant("M302")

    with pytest.raises(CommandError, match=message):
        run("fund_merchant", "M302", *args)
    assert not Account.objects.filter(merchant=m).exists()


def test_fund_merchant_refuses_an_unknown_merchant():
    with pytest.raises(CommandError, match="no merchant"):
        run("fund_merchant", "NOPE", "--account", "cash", "--amount", "100")
