-- One refund of 100 fen, in raw SQL: the writes refunds.services.refund_create makes, in the
-- same order and in the same transaction, with the fewest round trips (15 per refund).
-- Run by bench/refund_create.py as:
--   pgbench -n -c 8 -j 2 -T 20 -f bench/refund_create.pgbench.sql \
--           -D m0=<first merchant id> -D nm=<merchants in the shape> -D np=<payments per merchant> \
--           -D nc=<clients> -D run=<integer run id> bench_refunds
-- Each client refunds its own payments (k = client_id mod nc), like the service workers do, so
-- payment rows are never contended; in the one-merchant shape (nm=1) every transaction
-- contends for the same two account rows.
\set m :m0 + random(0, :nm - 1)
\set k :client_id + :nc * random(0, :np / :nc - 1)
\set r random(1, 1000000000000000)
BEGIN;
-- 1. lock the payment (and read its channel part: the service reads it right after)
SELECT p.id AS pid, pp.id AS partid, pp.channel_id AS chid, 'P' || to_char(:k, 'FM000000') AS otn
  FROM refunds_payment p JOIN refunds_paymentpart pp ON pp.payment_id = p.id
 WHERE p.merchant_id = :m AND p.out_trade_no = 'P' || to_char(:k, 'FM000000')
   AND p.amount - p.refunded_amount >= 100
   FOR UPDATE OF p \gset
-- 2. the refund
INSERT INTO refunds_refund (id, merchant_id, payment_id, out_refund_no, amount, currency, direction, source, reason,
    notify_url, status, failure_reason, estimated_arrival, coupon_not_returned, allocation, hold_amount, hold_currency,
    hold_account_kind, risk_outcome, risk_reasons, request_hash, created_by, created_by_user_id, created_at, updated_at,
    completed_at)
VALUES (gen_random_uuid(), :m, :pid, 'pgb-' || :run || '-' || :client_id || '-' || :r, 100, 'CNY', 'original', 'merchant',
    '', '', 'APPROVED', '', current_date + 1, 0, jsonb_build_object(CAST(:partid AS text), 100), 100, 'CNY',
    'pending_settlement', 'approve', '[]'::jsonb, md5(:r::text) || md5(:client_id::text), 'pgbench', NULL, now(), now(), NULL)
RETURNING id AS rid \gset
-- 3. its leg
INSERT INTO refunds_refundleg (refund_id, payment_part_id, route, channel_id, amount, currency, hold_amount, status,
    channel_refund_id, failure_reason, fallback_reason, next_action_at, check_count, submitted_at, needs_attention,
    created_at, updated_at, completed_at)
VALUES (':rid', :partid, 'wechat', :chid, 100, 'CNY', 100, 'QUEUED', '', '', '', NULL, 0, NULL, false, now(), now(), NULL);
-- 4. the two timeline events
INSERT INTO refunds_refundevent (refund_id, leg_id, kind, actor, from_status, to_status, reason, data, created_at)
VALUES (':rid', NULL, 'created', 'pgbench', '', 'APPROVED', '',
        '{"amount": 100, "direction": "original", "source": "merchant", "breakdown": {"channel": 100}, "hold": {"amount": 100, "currency": "CNY", "account": "pending_settlement"}}',
        now()),
       (':rid', NULL, 'risk', 'risk', '', 'APPROVED', 'no rule flagged this refund', '{"outcome": "approve", "reasons": []}', now());
-- 5. the payment and its part
UPDATE refunds_payment SET refunded_amount = refunded_amount + 100 WHERE id = :pid;
UPDATE refunds_paymentpart SET refunded_amount = refunded_amount + 100 WHERE id = :partid;
-- 6. last: the merchant's shared account rows, source (lower id) first, conditionally
UPDATE merchants_account SET balance = balance - 100
 WHERE merchant_id = :m AND kind = 'pending_settlement' AND currency = 'CNY' AND balance >= 100
RETURNING id AS src \gset
UPDATE merchants_account SET balance = balance + 100
 WHERE merchant_id = :m AND kind = 'refund_hold' AND currency = 'CNY'
RETURNING id AS hold \gset
-- 7. the ledger posting
INSERT INTO merchants_ledgertransaction (kind, reference, description, created_by, created_at)
VALUES ('refund_hold', 'refund:' || ':rid', 'hold for pgbench', 'pgbench', now()) RETURNING id AS tid \gset
INSERT INTO merchants_ledgerentry (transaction_id, account_id, amount, currency)
VALUES (:tid, :src, -100, 'CNY'), (:tid, :hold, 100, 'CNY');
COMMIT;
