-- EXPERIMENT (not what the service does today): refund_create.pgbench.sql with the merchant's
-- shared account rows locked for the shortest possible time. The ledger transaction and its
-- entries are inserted BEFORE the account rows are touched, so the row locks are held for two
-- UPDATEs + COMMIT instead of two UPDATEs + two INSERTs + COMMIT. Compare with `raw` in the one-merchant shape:
--   .venv/bin/python bench/refund_create.py --no-seed --shapes one --contenders raw,raw-accounts-last
-- (16 round trips: `raw` plus the SELECT of the account ids that `raw` gets from RETURNING.)
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
VALUES (gen_random_uuid(), :m, :pid, 'pgbl-' || :run || '-' || :client_id || '-' || :r, 100, 'CNY', 'original', 'merchant',
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
-- 6. the ledger posting first: it needs the account ids, not their locks
SELECT max(id) FILTER (WHERE kind = 'pending_settlement') AS src, max(id) FILTER (WHERE kind = 'refund_hold') AS hold
  FROM merchants_account WHERE currency = 'CNY' AND kind IN ('pending_settlement', 'refund_hold') AND merchant_id = :m \gset
INSERT INTO merchants_ledgertransaction (kind, reference, description, created_by, created_at)
VALUES ('refund_hold', 'refund:' || ':rid', 'hold for pgbench', 'pgbench', now()) RETURNING id AS tid \gset
INSERT INTO merchants_ledgerentry (transaction_id, account_id, amount, currency)
VALUES (:tid, :src, -100, 'CNY'), (:tid, :hold, 100, 'CNY');
-- 7. last, right before COMMIT: the shared account rows, in id order (as ledger_post_many does),
--    the debit conditional. If it cannot be covered, \gset finds no row: pgbench reports an error
--    and the transaction is not committed (the service raises InsufficientBalance and rolls back).
UPDATE merchants_account SET balance = balance - 100 WHERE id = :src AND balance >= 100 RETURNING id AS src_ok \gset
UPDATE merchants_account SET balance = balance + 100 WHERE id = :hold;
COMMIT;
