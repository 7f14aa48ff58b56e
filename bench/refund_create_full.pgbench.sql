-- One refund of 100 fen, in raw SQL, statement for statement what refunds.services.refund_create
-- sends today (captured with CaptureQueriesContext): the same 16 round trips, including its
-- reads (idempotency check before the transaction, parts + channel, the channel's per-payment
-- leg count, the merchant's accounts). The gap between this and the service is Python/ORM time;
-- the gap between this and refund_create.pgbench.sql is the extra reads.
-- Same variables as refund_create.pgbench.sql.
\set m :m0 + random(0, :nm - 1)
\set k :client_id + :nc * random(0, :np / :nc - 1)
\set r random(1, 1000000000000000)
-- 0. idempotency check (outside the transaction)
SELECT count(*) AS replay FROM (SELECT * FROM refunds_refund
 WHERE merchant_id = :m AND out_refund_no = 'pgbf-' || :run || '-' || :client_id || '-' || :r
 LIMIT 1) x \gset
BEGIN;
-- 1. lock the payment
SELECT id AS pid, amount - refunded_amount AS refundable FROM (SELECT * FROM refunds_payment
 WHERE merchant_id = :m AND out_trade_no = 'P' || to_char(:k, 'FM000000')
 LIMIT 1 FOR UPDATE) x \gset
-- 2. its parts with their channels
SELECT pp.id AS partid, c.id AS chid, c.max_refunds_per_payment AS lim
  FROM refunds_paymentpart pp LEFT OUTER JOIN payment_channels_channel c ON pp.channel_id = c.id
 WHERE pp.payment_id = :pid ORDER BY pp.position ASC \gset
-- 3. legs so far on the part (the channel has a per-payment limit)
SELECT l.payment_part_id AS ppid, COUNT(l.id) AS n
  FROM refunds_refundleg l INNER JOIN payment_channels_channel c ON l.channel_id = c.id
 WHERE l.payment_part_id IN (:partid) AND l.route = c.code AND NOT (l.status = 'CANCELLED') GROUP BY 1;
-- 4. the refund
INSERT INTO refunds_refund (id, merchant_id, payment_id, out_refund_no, amount, currency, direction, source, reason,
    notify_url, status, failure_reason, estimated_arrival, coupon_not_returned, allocation, hold_amount, hold_currency,
    hold_account_kind, risk_outcome, risk_reasons, request_hash, created_by, created_by_user_id, created_at, updated_at,
    completed_at)
VALUES (gen_random_uuid(), :m, :pid, 'pgbf-' || :run || '-' || :client_id || '-' || :r, 100, 'CNY', 'original', 'merchant',
    '', '', 'APPROVED', '', current_date + 1, 0, jsonb_build_object(CAST(:partid AS text), 100), 100, 'CNY',
    'pending_settlement', 'approve', '[]'::jsonb, md5(:r::text) || md5(:client_id::text), 'pgbench', NULL, now(), now(), NULL)
RETURNING id AS rid \gset
-- 5. its leg
INSERT INTO refunds_refundleg (refund_id, payment_part_id, route, channel_id, amount, currency, hold_amount, status,
    channel_refund_id, failure_reason, fallback_reason, next_action_at, check_count, submitted_at, needs_attention,
    created_at, updated_at, completed_at)
VALUES (':rid', :partid, 'wechat', :chid, 100, 'CNY', 100, 'QUEUED', '', '', '', NULL, 0, NULL, false, now(), now(), NULL) RETURNING id;
-- 6. the two timeline events
INSERT INTO refunds_refundevent (refund_id, leg_id, kind, actor, from_status, to_status, reason, data, created_at)
VALUES (':rid', NULL, 'created', 'pgbench', '', 'APPROVED', '',
        '{"amount": 100, "direction": "original", "source": "merchant", "breakdown": {"channel": 100}, "hold": {"amount": 100, "currency": "CNY", "account": "pending_settlement"}}',
        now()),
       (':rid', NULL, 'risk', 'risk', '', 'APPROVED', 'no rule flagged this refund', '{"outcome": "approve", "reasons": []}', now())
RETURNING id;
-- 7. the payment and its part
UPDATE refunds_payment SET refunded_amount = refunded_amount + 100 WHERE id = :pid;
UPDATE refunds_paymentpart SET refunded_amount = refunded_amount + 100 WHERE id IN (:partid);
-- 8. the merchant's accounts
SELECT max(id) FILTER (WHERE kind = 'pending_settlement') AS src, max(id) FILTER (WHERE kind = 'refund_hold') AS hold
  FROM merchants_account WHERE currency = 'CNY' AND kind IN ('pending_settlement', 'refund_hold') AND merchant_id = :m \gset
-- 9. the ledger posting
INSERT INTO merchants_ledgertransaction (kind, reference, description, created_by, created_at)
VALUES ('refund_hold', 'refund:' || ':rid', 'hold for pgbench', 'pgbench', now()) RETURNING id AS tid \gset
INSERT INTO merchants_ledgerentry (transaction_id, account_id, amount, currency)
VALUES (:tid, :src, -100, 'CNY'), (:tid, :hold, 100, 'CNY') RETURNING id;
-- 10. last, right before COMMIT: the shared account rows, source (lower id) first, conditionally
UPDATE merchants_account SET balance = balance + -100 WHERE id = :src AND balance >= 100;
UPDATE merchants_account SET balance = balance + 100 WHERE id = :hold;
COMMIT;
