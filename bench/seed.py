"""Seed a dedicated PostgreSQL database `bench_refunds` for the refund_create benchmark.

    .venv/bin/python bench/seed.py [--merchants 64] [--payments 2000]

Drops and recreates the database, migrates it, then creates:
- one channel `wechat` (no refund limit that the benchmark could reach, so every refund takes
  the original route and the plan_legs count query still runs);
- N merchants `BM0000`.. (refund source: pending settlement, no review threshold), each with
  its pending-settlement and refund-hold accounts created up front;
- P payments per merchant (`P000000`.., 100 000 fen, one wechat part), bulk-inserted, and the
  matching collection credited to the merchant's pending settlement with ONE ledger posting
  per merchant (plus a generous top-up through merchants.services.merchant_fund), so every
  account balance still equals the sum of its entries.

Only local addresses: postgres://postgres@127.0.0.1:5432.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "bench_refunds"
DATABASE_URL = f"{PG}/{DB_NAME}"
PAYMENT_AMOUNT = 100_000  # fen; a 100-fen refund can be taken 1000 times from one payment
MERCHANT_PREFIX = "BM"
CHANNEL_LIMIT = 1000  # >= PAYMENT_AMOUNT / 100: never reached by 100-fen refunds


def merchant_code(i: int) -> str:
    return f"{MERCHANT_PREFIX}{i:04d}"


def out_trade_no(k: int) -> str:
    return f"P{k:06d}"


def setup_django(database_url: str | None = None) -> None:
    """Point Django at the benchmark database (this module's, or `database_url`) and set it up
    (call once per process)."""
    os.environ["DATABASE_URL"] = database_url or DATABASE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The dispatch relay (refunds.dispatch.sweep) hands legs to Celery when a benchmark runs it.
    # The default broker is a folder under var/ that a real worker (pointed at another database)
    # could consume: keep the benchmark's messages in process memory instead (override with
    # BENCH_CELERY_BROKER_URL).
    os.environ["CELERY_BROKER_URL"] = os.environ.get("BENCH_CELERY_BROKER_URL", "memory://")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def recreate_database(name: str | None = None) -> None:
    import psycopg

    name = name or DB_NAME
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def migrate(database_url: str | None = None) -> None:
    env = {**os.environ, "DATABASE_URL": database_url or DATABASE_URL, "CELERY_BROKER_URL": "memory://"}
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def seed(n_merchants: int, n_payments: int) -> None:
    import datetime

    from django.db import connection, transaction
    from django.utils import timezone

    from channels.models import Channel
    from merchants import services as money
    from merchants.models import Account, LedgerTransaction, Merchant
    from refunds.models import Payment, PaymentPart

    paid_at = timezone.now() - datetime.timedelta(days=1)
    with transaction.atomic():
        wechat = Channel.objects.create(
            code="wechat", name="WeChat Pay", adapter="sandbox", refund_window_days=365,
            max_refunds_per_payment=CHANNEL_LIMIT, dedupes_by_refund_no=True, typical_days_to_arrive=1,
        )
        collections = money.platform_account(Account.Kind.COLLECTIONS, "CNY")
    for i in range(n_merchants):
        with transaction.atomic():
            m = money.merchant_create(
                code=merchant_code(i), name=f"Bench merchant {i}", refund_source=Merchant.RefundSource.PENDING_SETTLEMENT
            )
            accounts = money.merchant_accounts(m, "CNY", [Account.Kind.PENDING_SETTLEMENT, Account.Kind.REFUND_HOLD])
            payments = Payment.objects.bulk_create(
                [
                    Payment(
                        merchant=m, out_trade_no=out_trade_no(k), amount=PAYMENT_AMOUNT, currency="CNY",
                        user_id=f"u-{i}-{k}", paid_at=paid_at, settlement_currency="CNY",
                        settlement_amount=PAYMENT_AMOUNT,
                    )
                    for k in range(n_payments)
                ],
                batch_size=2000,
            )
            PaymentPart.objects.bulk_create(
                [
                    PaymentPart(
                        payment=p, position=0, kind=PaymentPart.Kind.CHANNEL, amount=PAYMENT_AMOUNT, channel=wechat,
                        channel_txn_id=f"wx-{i}-{k}",
                    )
                    for k, p in enumerate(payments)
                ],
                batch_size=2000,
            )
            total = PAYMENT_AMOUNT * n_payments
            money.ledger_post(
                kind=LedgerTransaction.Kind.PAYMENT,
                lines=[money.Line(collections, -total), money.Line(accounts[Account.Kind.PENDING_SETTLEMENT], total)],
                reference=f"bench-seed:{m.code}", description=f"bench: {n_payments} payments collected",
                created_by="bench-seed",
            )
            # Generous on top of the collections (which alone already cover every refund).
            money.merchant_fund(merchant=m, account_kind=Account.Kind.PENDING_SETTLEMENT, amount=10**12, by="bench-seed")
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merchants", type=int, default=64)
    ap.add_argument("--payments", type=int, default=2000, help="payments per merchant")
    args = ap.parse_args(argv)
    run(args.merchants, args.payments)


def run(n_merchants: int, n_payments: int) -> None:
    t0 = time.monotonic()
    recreate_database()
    migrate()
    setup_django()
    seed(n_merchants, n_payments)
    print(
        f"seeded {DB_NAME}: {n_merchants} merchants x {n_payments} payments in {time.monotonic() - t0:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
