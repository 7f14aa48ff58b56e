"""Seed a dedicated PostgreSQL database `bench_scale` with a million refunds, for bench/list_screens.py.

    .venv/bin/python bench/seed_scale.py [--refunds 1000000] [--merchants 50]

Drops and recreates the database, migrates it (`manage.py migrate`), creates a few users through
the ORM, then fills the big tables with plain SQL (INSERT ... SELECT over generate_series, one
transaction per table, every constraint and foreign key checked as usual). About 4-6 minutes on
a 2-CPU machine. What it makes, with the default --refunds 1000000:

- 50 merchants `SM0000`.. (every 5th with a review threshold), each with a pending-settlement and
  a refund-hold account; the platform's collections and channel-refunds accounts; channel `wechat`;
- refunds/2 payments (100 000 fen, one wechat part each), paid over the last ~350 days;
- the refunds, two per payment, 30 s apart from each other in time (oldest ~350 days ago), with
  one leg each and a `created` event each (plus a transition event for one in five). Status mix:
  92.6 % SUCCEEDED, 1 % PENDING_REVIEW, 1 % FAILED, 0.9 % MANUAL_PAYOUT, 1 % PROCESSING,
  2.5 % REJECTED, 1 % CANCELLED. `refunded_amount` of every payment and part is the sum of its
  refunds that count (all but rejected and cancelled);
- the ledger: one collection posting per merchant and day (collections -> pending settlement)
  and one posting per counted refund (pending settlement -> refund hold while it is open,
  pending settlement -> channel refunds once it succeeded), 2 entries each (~2 M entries);
  every account balance is then set to the sum of its entries;
- 50 000 complaints (10 % open, 15 % assigned, 25 % resolved, 50 % closed) with an `opened` event;
- 10 000 manual payouts on the oldest MANUAL_PAYOUT legs (30 % awaiting approval, 10 % returned,
  60 % paid, four eyes respected; a paid one's leg and refund SUCCEEDED, as payout_approve
  leaves them), card numbers encrypted with the project's key;
- one webhook delivery per five refunds (mostly delivered, some failed or dead).

Users: `bench` (superuser, password `bench`), `agent1`..`agent5`, `finance1`..`finance3`.
Only local addresses: postgres://postgres@127.0.0.1:5432. Ends with VACUUM ANALYZE.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed as bench_seed  # noqa: E402  (bench/seed.py: database set-up shared by the benchmarks)

ROOT = Path(__file__).resolve().parent.parent
PG = bench_seed.PG
DB_NAME = "bench_scale"
DATABASE_URL = f"{PG}/{DB_NAME}"
BENCH_USER, BENCH_PASSWORD = "bench", "bench"
STEP_SECONDS = 30  # between two consecutive refunds
PAYMENT_AMOUNT = 100_000

# Big tables whose secondary (non-constraint) indexes are dropped while loading and built again
# afterwards: building an index once is several times faster than maintaining it row by row.
LOADED_TABLES = [
    "refunds_payment", "refunds_paymentpart", "refunds_refund", "refunds_refundleg", "refunds_refundevent",
    "merchants_ledgertransaction", "merchants_ledgerentry", "refunds_complaint", "refunds_complaintevent",
    "refunds_manualpayout", "merchants_webhookdelivery",
]


def setup_django() -> None:
    bench_seed.setup_django(DATABASE_URL)


def recreate_database() -> None:
    bench_seed.recreate_database(DB_NAME)


def migrate() -> None:
    bench_seed.migrate(DATABASE_URL)


def create_users() -> dict[str, int]:
    """Through the ORM (password hashing, groups): a superuser for the bench and a few staff."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from refunds import roles

    User = get_user_model()
    ids = {BENCH_USER: User.objects.create_superuser(BENCH_USER, "bench@example.com", BENCH_PASSWORD).pk}
    for i in range(1, 6):
        u = User.objects.create_user(f"agent{i}", password=BENCH_PASSWORD, is_staff=True)
        u.groups.add(Group.objects.get(name=roles.AGENT))
        ids[u.username] = u.pk
    for i in range(1, 4):
        u = User.objects.create_user(f"finance{i}", password=BENCH_PASSWORD, is_staff=True)
        u.groups.add(Group.objects.get(name=roles.FINANCE))
        ids[u.username] = u.pk
    return ids


def encrypted_card() -> str:
    from refunds import cards

    return cards.encrypt("6222021234567890123")


# ---------------------------------------------------------------------------------------------
# The SQL. :names are filled in by fmt(); every row is a function of its generate_series index
# so that the tables agree with each other without lookups.

# Refund j (0-based): payment j % P (two refunds per payment), created T0 - (R - j) * STEP.
# h is a well-spread hash of j in [0, 1000) deciding the status.
REFUND_STATUS = """
    CASE WHEN h < 10 THEN 'PENDING_REVIEW' WHEN h < 20 THEN 'FAILED' WHEN h < 35 THEN 'MANUAL_PAYOUT'
         WHEN h < 45 THEN 'PROCESSING' WHEN h < 70 THEN 'REJECTED' WHEN h < 80 THEN 'CANCELLED'
         ELSE 'SUCCEEDED' END
"""

SQL_STAGE = """
CREATE UNLOGGED TABLE seed_refund AS
SELECT j, p, id, merchant_id, amount, created_at, status,
       status NOT IN ('REJECTED', 'CANCELLED') AS counts
FROM (
  SELECT j, j % :P AS p, md5('refund-' || j)::uuid AS id, (j % :P) % :M + 1 AS merchant_id,
         1000 + ((j::bigint * 7919) % 90) * 100 AS amount,
         :T0::timestamptz - ((:R - j) * :STEP) * interval '1 second' AS created_at,
         """ + REFUND_STATUS + """ AS status
  FROM (SELECT j, (((j::bigint * 2654435761) % 4294967296) % 1000) AS h FROM generate_series(0, :R - 1) j) s
) t;
CREATE UNIQUE INDEX ON seed_refund (j);
-- The oldest N refunds in MANUAL_PAYOUT get a manual payout; a paid one made its leg, and so
-- its (one-leg) refund, succeed, as refunds.payouts.payout_approve does.
ALTER TABLE seed_refund ADD COLUMN payout_k int, ADD COLUMN payout_status text;
UPDATE seed_refund s SET payout_k = x.k,
  payout_status = CASE WHEN x.k % 10 < 3 THEN 'awaiting_approval' WHEN x.k % 10 < 4 THEN 'returned' ELSE 'paid' END
FROM (SELECT j, row_number() OVER (ORDER BY j) AS k FROM seed_refund WHERE status = 'MANUAL_PAYOUT' ORDER BY j LIMIT :N) x
WHERE s.j = x.j;
UPDATE seed_refund SET status = 'SUCCEEDED' WHERE payout_status = 'paid';
ANALYZE seed_refund;
"""

SQL_BASE = """
INSERT INTO payment_channels_channel (id, code, name, adapter, enabled, refund_window_days, max_refunds_per_payment,
  dedupes_by_refund_no, typical_days_to_arrive, note, updated_at)
VALUES (1, 'wechat', 'WeChat Pay', 'sandbox', true, 400, NULL, true, 1, 'bench', :T0);
INSERT INTO merchants_merchant (id, code, name, status, refund_source, fallback_route, allocation_strategy,
  review_threshold, webhook_url, webhook_secret, created_at)
SELECT m, 'SM' || lpad((m - 1)::text, 4, '0'), 'Scale merchant ' || (m - 1), 'active', 'pending_settlement', 'manual',
  'proportional', CASE WHEN m % 5 = 0 THEN 500000 END, 'https://merchant.invalid/hook', 'whsec_bench_' || m,
  :T0::timestamptz - interval '400 days'
FROM generate_series(1, :M) m;
INSERT INTO merchants_account (merchant_id, user_id, sub_ledger, kind, currency, balance, may_go_negative)
SELECT m, '', '', k, 'CNY', 0, false FROM generate_series(1, :M) m, unnest(ARRAY['pending_settlement', 'refund_hold']) k
ORDER BY m, k;
INSERT INTO merchants_account (merchant_id, user_id, sub_ledger, kind, currency, balance, may_go_negative) VALUES
  (NULL, '', '', 'collections', 'CNY', 0, true), (NULL, '', 'wechat', 'channel_refunds', 'CNY', 0, true);
"""

SQL_PAYMENTS = """
INSERT INTO refunds_payment (id, merchant_id, out_trade_no, amount, currency, user_id, paid_at, settlement_currency,
  settlement_amount, expires_at, auto_refund_on_expiry, record_version, legacy_amount_yuan, refunded_amount,
  request_hash, created_at)
SELECT p + 1, p % :M + 1, 'T' || lpad(p::text, 9, '0'), :AMOUNT, 'CNY', 'u' || lpad((p % 200000)::text, 7, '0'),
  paid, 'CNY', :AMOUNT, NULL, false, 2, NULL, coalesce(r.refunded, 0), md5('payment-' || p), paid
FROM (SELECT p, :T0::timestamptz - ((:R - p) * :STEP + 3600) * interval '1 second' AS paid
      FROM generate_series(0, :P - 1) p) s
LEFT JOIN (SELECT seed_refund.p AS rp, sum(amount) FILTER (WHERE counts) AS refunded FROM seed_refund GROUP BY 1) r
  ON r.rp = s.p
ORDER BY p;
INSERT INTO refunds_paymentpart (id, payment_id, position, kind, amount, channel_id, channel_txn_id, coupon_id,
  refunded_amount)
SELECT id, id, 0, 'channel', amount, 1, 'wx' || id, '', refunded_amount FROM refunds_payment ORDER BY id;
"""

SQL_REFUNDS = """
INSERT INTO refunds_refund (id, merchant_id, payment_id, out_refund_no, amount, currency, direction, source, reason,
  notify_url, status, failure_reason, estimated_arrival, coupon_not_returned, allocation, hold_amount, hold_currency,
  hold_account_kind, risk_outcome, risk_reasons, request_hash, created_by, created_by_user_id, created_at, updated_at,
  completed_at)
SELECT id, merchant_id, p + 1, 'R' || lpad(j::text, 10, '0'), amount, 'CNY', 'original',
  CASE WHEN j % 20 = 0 THEN 'customer_service' WHEN j % 20 = 1 THEN 'user' WHEN j % 50 = 2 THEN 'auto'
       ELSE 'merchant' END,
  'bench', '', status,
  CASE WHEN status = 'FAILED' THEN 'CHANNEL_REJECTED' WHEN status = 'REJECTED' THEN 'REJECTED' ELSE '' END,
  (created_at + interval '1 day')::date, 0, jsonb_build_object((p + 1)::text, amount), amount, 'CNY',
  'pending_settlement',
  CASE WHEN status = 'PENDING_REVIEW' THEN 'review' ELSE 'approve' END,
  CASE WHEN status = 'PENDING_REVIEW' THEN '["amount above the merchant''s review threshold 5000.00"]'::jsonb
       ELSE '[]'::jsonb END,
  md5('req-' || j), 'api:SM' || lpad((merchant_id - 1)::text, 4, '0'), NULL, created_at,
  created_at + interval '10 minutes',
  CASE WHEN status = 'SUCCEEDED' THEN created_at + interval '10 minutes' END
FROM seed_refund ORDER BY j;
"""

SQL_LEGS = """
INSERT INTO refunds_refundleg (id, refund_id, payment_part_id, route, channel_id, amount, currency, hold_amount, status,
  channel_refund_id, failure_reason, fallback_reason, next_action_at, check_count, submitted_at, needs_attention,
  created_at, updated_at, completed_at)
SELECT j + 1, id, p + 1, 'wechat', 1, amount, 'CNY', amount, ls,
  CASE WHEN ls IN ('SUCCEEDED', 'PROCESSING', 'FAILED') AND payout_k IS NULL THEN 'wxr' || j ELSE '' END,
  CASE WHEN ls = 'FAILED' THEN 'CHANNEL_REJECTED' ELSE '' END, '',
  CASE WHEN ls = 'PROCESSING' THEN created_at + interval '1 hour' END, 0,
  CASE WHEN ls IN ('SUCCEEDED', 'PROCESSING', 'FAILED', 'MANUAL_PAYOUT') THEN created_at + interval '1 minute' END,
  false, created_at, created_at + interval '10 minutes',
  CASE WHEN ls = 'SUCCEEDED' THEN created_at + interval '10 minutes' END
FROM (SELECT j, p, id, amount, created_at, payout_k,
             CASE status WHEN 'PENDING_REVIEW' THEN 'PENDING' WHEN 'REJECTED' THEN 'CANCELLED' ELSE status END AS ls
      FROM seed_refund) s
ORDER BY j;
"""

SQL_EVENTS = """
INSERT INTO refunds_refundevent (refund_id, leg_id, kind, actor, from_status, to_status, reason, data, created_at)
SELECT id, NULL, 'created', 'api:bench', '',
  CASE WHEN status = 'PENDING_REVIEW' THEN 'PENDING_REVIEW' ELSE 'APPROVED' END, '', '{}'::jsonb, created_at
FROM seed_refund ORDER BY j;
INSERT INTO refunds_refundevent (refund_id, leg_id, kind, actor, from_status, to_status, reason, data, created_at)
SELECT id, j + 1, 'transition', 'task:bench', 'APPROVED', status, '', '{}'::jsonb, created_at + interval '10 minutes'
FROM seed_refund WHERE j % 5 = 0 AND status <> 'PENDING_REVIEW' ORDER BY j;
"""

# Account ids: merchant m has pending_settlement 2m-1 and refund_hold 2m (inserted in that order);
# collections 2M+1, channel_refunds 2M+2.
SQL_LEDGER = """
CREATE UNLOGGED TABLE seed_posting AS
SELECT row_number() OVER (ORDER BY at, ref) AS n, * FROM (
  SELECT 'payment' AS kind, 'merchant:SM' || lpad((merchant_id - 1)::text, 4, '0') || ':' || day AS ref,
         'collections of ' || day AS descr, max(paid_at) AS at, sum(amount) AS amount,
         :M * 2 + 1 AS debit, merchant_id * 2 - 1 AS credit
  FROM (SELECT merchant_id, amount, paid_at, paid_at::date AS day FROM refunds_payment) pay
  GROUP BY merchant_id, day
  UNION ALL
  SELECT CASE WHEN status = 'SUCCEEDED' THEN 'refund_paid' ELSE 'refund_hold' END, 'refund:' || id,
         'refund ' || j, created_at, amount, merchant_id * 2 - 1,
         CASE WHEN status = 'SUCCEEDED' THEN :M * 2 + 2 ELSE merchant_id * 2 END
  FROM seed_refund WHERE counts
) x;
INSERT INTO merchants_ledgertransaction (id, kind, reference, description, created_by, created_at)
SELECT n, kind, ref, descr, 'bench-seed', at FROM seed_posting ORDER BY n;
INSERT INTO merchants_ledgerentry (id, transaction_id, account_id, amount, currency)
SELECT n * 2 - 1, n, debit, -amount, 'CNY' FROM seed_posting
UNION ALL
SELECT n * 2, n, credit, amount, 'CNY' FROM seed_posting
ORDER BY 1;
UPDATE merchants_account a SET balance = s.total
FROM (SELECT account_id, sum(amount) AS total FROM merchants_ledgerentry GROUP BY account_id) s
WHERE s.account_id = a.id;
DROP TABLE seed_posting;
"""

# Complaint c is about payment (c * 9973) % P, and its later refund when it has one.
SQL_COMPLAINTS = """
INSERT INTO refunds_complaint (id, merchant_id, payment_id, refund_id, customer_contact, category, description, status,
  assignee_id, due_at, outcome, opened_by_id, created_at, updated_at, finished_at)
SELECT c + 1, r.merchant_id, r.p + 1, CASE WHEN c % 5 <> 0 THEN r.id END, '+86 138 0000 ' || lpad((c % 10000)::text, 4, '0'),
  (ARRAY['not_received', 'slow', 'wrong_amount', 'wants_refund', 'merchant_refused', 'other'])[c % 6 + 1],
  'The customer says the refund did not arrive.', st,
  CASE WHEN st = 'open' THEN NULL ELSE (ARRAY[:AGENTS])[c % :NAGENTS + 1] END,
  r.created_at + interval '3 days',
  CASE WHEN st IN ('resolved', 'closed') THEN 'Explained the channel delay.' ELSE '' END,
  (ARRAY[:AGENTS])[(c + 1) % :NAGENTS + 1], r.created_at + interval '1 day', r.created_at + interval '2 days',
  CASE WHEN st IN ('resolved', 'closed') THEN r.created_at + interval '2 days' END
FROM (SELECT c, CASE WHEN c % 20 < 2 THEN 'open' WHEN c % 20 < 5 THEN 'assigned' WHEN c % 20 < 10 THEN 'resolved'
                     ELSE 'closed' END AS st,
             (:P + (c::bigint * 9973) % :P) AS rj
      FROM generate_series(0, :C - 1) c) s
JOIN seed_refund r ON r.j = s.rj
ORDER BY c;
INSERT INTO refunds_complaintevent (complaint_id, kind, actor, user_id, body, data, created_at)
SELECT id, 'opened', 'user:agent', opened_by_id, '', '{}'::jsonb, created_at FROM refunds_complaint ORDER BY id;
"""

# The payouts chosen in SQL_STAGE: recorded by an agent, paid ones approved by finance.
SQL_PAYOUTS = """
INSERT INTO refunds_manualpayout (id, leg_id, refund_id, amount, currency, holder_name, card_number_encrypted,
  card_first6, card_last4, card_length, bank_name, account_type, phone, status, recorded_by_id, recorded_at,
  approved_by_id, approved_at, transfer_reference, returned_reason, created_at, updated_at)
SELECT k, j + 1, id, amount, 'CNY', 'Zhang San', :CARD, '622202', '0123', 19, 'ICBC',
  CASE WHEN k % 7 = 0 THEN 'corporate' ELSE 'personal' END, '+86 138 0000 0000', st,
  (ARRAY[:AGENTS])[k % :NAGENTS + 1], created_at + interval '1 day',
  CASE WHEN st = 'paid' THEN (ARRAY[:FINANCE])[k % :NFINANCE + 1] END,
  CASE WHEN st = 'paid' THEN created_at + interval '2 days' END,
  CASE WHEN st = 'paid' THEN 'TRF' || lpad(k::text, 9, '0') ELSE '' END,
  CASE WHEN st = 'returned' THEN 'Card holder name does not match' ELSE '' END,
  created_at + interval '1 day', created_at + interval '2 days'
FROM (SELECT payout_k AS k, j, id, amount, created_at, payout_status AS st FROM seed_refund
      WHERE payout_k IS NOT NULL) s
ORDER BY k;
"""

SQL_WEBHOOKS = """
INSERT INTO merchants_webhookdelivery (event_id, event, audience, merchant_id, reference, url, payload, status, attempts,
  next_attempt_at, last_error, dedupe_key, created_at, updated_at, delivered_at)
SELECT md5('delivery-' || j)::uuid, 'refund.' || lower(status), 'merchant', merchant_id, 'refund:' || id,
  'https://merchant.invalid/hook', jsonb_build_object('refund_id', id, 'status', status), st,
  CASE WHEN st = 'delivered' THEN 1 WHEN st = 'dead' THEN 8 ELSE 3 END,
  created_at + interval '1 hour', CASE WHEN st IN ('failed', 'dead') THEN 'HTTP 502' ELSE '' END, '',
  created_at + interval '10 minutes', created_at + interval '1 hour',
  CASE WHEN st = 'delivered' THEN created_at + interval '11 minutes' END
FROM (SELECT *, CASE WHEN j % 1000 = 5 THEN 'dead' WHEN j % 1000 = 10 THEN 'failed' ELSE 'delivered' END AS st
      FROM seed_refund WHERE j % 5 = 0) s
ORDER BY j;
"""

def fmt(sql: str, values: dict) -> str:
    for key in sorted(values, key=len, reverse=True):
        sql = sql.replace(f":{key}", str(values[key]))
    return sql


def seed(n_refunds: int, n_merchants: int, n_complaints: int, n_payouts: int, users: dict[str, int]) -> None:
    import datetime

    import psycopg

    t0 = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    agents = [users[f"agent{i}"] for i in range(1, 6)]
    finance = [users[f"finance{i}"] for i in range(1, 4)]
    values = {
        "R": n_refunds, "P": n_refunds // 2, "M": n_merchants, "C": n_complaints, "N": n_payouts,
        "T0": f"'{t0.isoformat()}'", "STEP": STEP_SECONDS, "AMOUNT": PAYMENT_AMOUNT,
        "AGENTS": ",".join(map(str, agents)), "NAGENTS": len(agents),
        "FINANCE": ",".join(map(str, finance)), "NFINANCE": len(finance), "CARD": f"'{encrypted_card()}'",
    }
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '256MB'")
        dropped = drop_secondary_indexes(conn)

        def step(name: str, sql: str) -> None:
            started = time.monotonic()
            with conn.transaction():
                conn.execute(fmt(sql, values))
            print(f"  {name:<28} {time.monotonic() - started:6.1f}s", flush=True)

        step("stage refunds", SQL_STAGE)
        step("merchants, accounts", SQL_BASE)
        step("payments, parts", SQL_PAYMENTS)
        step("refunds", SQL_REFUNDS)
        step("legs", SQL_LEGS)
        step("events", SQL_EVENTS)
        step("ledger", SQL_LEDGER)
        step("complaints", SQL_COMPLAINTS)
        step("manual payouts", SQL_PAYOUTS)
        step("webhook deliveries", SQL_WEBHOOKS)
        conn.execute("DROP TABLE seed_refund")
        started = time.monotonic()
        for _table, indexdef in dropped:
            conn.execute(indexdef)
        print(f"  {'indexes rebuilt':<28} {time.monotonic() - started:6.1f}s", flush=True)
        # Rows inserted with explicit ids: move the identity sequences past them.
        for table in ["payment_channels_channel", "merchants_merchant", "merchants_account", *LOADED_TABLES]:
            if table != "refunds_refund":  # a UUID key
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                             f"coalesce((SELECT max(id) FROM {table}), 1))")
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        print(f"  {'vacuum analyze':<28} {time.monotonic() - started:6.1f}s", flush=True)


def drop_secondary_indexes(conn) -> list[tuple[str, str]]:
    """Drop the loaded tables' indexes that back no constraint; return their definitions."""
    rows = conn.execute(
        """
        SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        ORDER BY t.relname, i.relname
        """,
        [LOADED_TABLES],
    ).fetchall()
    for _table, index, _definition in rows:
        conn.execute(f'DROP INDEX "{index}"')
    return [(table, definition) for table, _index, definition in rows]


def report_sizes() -> None:
    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        rows = conn.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s) ORDER BY relname", [LOADED_TABLES]
        ).fetchall()
    print(f"{DB_NAME}: {size}; " + ", ".join(f"{name} {n:,}" for name, n in rows))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refunds", type=int, default=1_000_000)
    ap.add_argument("--merchants", type=int, default=50)
    ap.add_argument("--complaints", type=int, default=50_000)
    ap.add_argument("--payouts", type=int, default=10_000)
    args = ap.parse_args(argv)
    started = time.monotonic()
    recreate_database()
    migrate()
    print(f"  {'create + migrate':<28} {time.monotonic() - started:6.1f}s", flush=True)
    setup_django()
    users = create_users()
    seed(args.refunds, args.merchants, args.complaints, args.payouts, users)
    report_sizes()
    print(f"seeded {DB_NAME} in {time.monotonic() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
