"""Server time of every list screen and admin changelist on a million refunds (bench/seed_scale.py).

    .venv/bin/python bench/seed_scale.py            # once: drops, recreates and fills bench_scale
    .venv/bin/python bench/list_screens.py          # measure, print the table
    .venv/bin/python bench/list_screens.py --only admin --explain   # plans of the slow queries
    .venv/bin/python bench/list_screens.py --json out.json          # keep the numbers

Requests go through Django's test Client in this process (DATABASE_URL pointing at bench_scale,
DEBUG off), signed in as the seed's superuser `bench`, so "ms" is the whole server side of a
request: middleware, views, queries, templates. Each screen is requested --repeat times (5) after
one warm-up request, and the median is shown with the number of queries of that request and its
slowest query (timed around cursor.execute, CaptureQueriesContext for the list), and the CPU
time the request took in this process (Python: views, ORM, templates). The cache (the
navigation's badge counts) is cleared before every request, so every request counts its badges:
the worst case, what a server process with a cold cache pays.

Baselines in the same run, straight through psycopg: a keyset page of 51 refunds deep in the table,
the same page by OFFSET, and a stock `SELECT COUNT(*) FROM refunds_refund`.

The budget is 150 ms (issue "screens", item 8); rows over it are marked `!`.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seed_scale  # noqa: E402

BUDGET_MS = 150


def setup_django() -> None:
    os.environ.setdefault("DEBUG", "0")
    seed_scale.setup_django()


# ---------------------------------------------------------------------------------------------
# What to request


def sample_values() -> dict:
    """Ids and cursors taken from the data (outside the timings)."""
    from django.db import connection

    from refunds import screens

    def one(sql, params=()):
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    v = {}
    v["merchant"] = "SM0007"
    mid = one("SELECT id FROM merchants_merchant WHERE code = %s", [v["merchant"]])[0]
    v["merchant_id"] = mid
    # A refund in the middle of the table, and its payment, user, channel refund id.
    rid, ono, pid = one("SELECT id, out_refund_no, payment_id FROM refunds_refund WHERE out_refund_no = 'R0000500002'")
    v["refund_id"], v["out_refund_no"] = str(rid), ono
    v["out_trade_no"], v["user_id"] = one("SELECT out_trade_no, user_id FROM refunds_payment WHERE id = %s", [pid])
    v["channel_refund_id"] = one(
        "SELECT channel_refund_id FROM refunds_refundleg WHERE channel_refund_id <> '' ORDER BY id OFFSET 300000 LIMIT 1"
    )[0]
    # Keyset cursors 90 % down the refund list (newest first), overall and within one merchant.
    from refunds.models import Refund

    deep = Refund.objects.order_by("-created_at", "-pk")[900_000]
    v["deep_cursor"] = screens.encode_cursor(deep)
    v["deep_created_at"], v["deep_id"] = deep.created_at, deep.pk
    deep_m = Refund.objects.filter(merchant_id=mid).order_by("-created_at", "-pk")[18_000]
    v["deep_cursor_merchant"] = screens.encode_cursor(deep_m)
    pending = Refund.objects.filter(status="PENDING_REVIEW").order_by("created_at", "pk")[9_000]
    v["deep_queue_cursor"] = screens.encode_cursor(pending)
    v["deep_complaint"] = one("SELECT id FROM refunds_complaint ORDER BY id LIMIT 1 OFFSET 2000")[0]
    v["deep_entry"] = one(
        "SELECT e.id FROM merchants_ledgerentry e JOIN merchants_account a ON a.id = e.account_id "
        "WHERE a.merchant_id = %s ORDER BY e.id LIMIT 1 OFFSET 2000", [mid]
    )[0]
    v["deep_failed_leg"] = one("SELECT id FROM refunds_refundleg WHERE status = 'FAILED' ORDER BY id OFFSET 9000 LIMIT 1")[0]
    v["deep_paid_payout"] = one("SELECT id FROM refunds_manualpayout WHERE status = 'paid' ORDER BY id LIMIT 1 OFFSET 200")[0]
    v["ledger_reference"] = f"refund:{v['refund_id']}"
    return v


def screens_to_measure(v: dict) -> list[tuple[str, str]]:
    m = v["merchant"]
    return [
        # Customer-service screens
        ("review queue", "/review/"),
        ("review queue: merchant", f"/review/?merchant={m}"),
        ("review queue: source=user", "/review/?source=user"),
        ("review queue: flag", "/review/?flag=review+threshold"),
        ("review queue: amount>=50", "/review/?amount_min=50"),
        ("review queue: older than 7 d", "/review/?age=168"),
        ("review queue: deep keyset", f"/review/?after={v['deep_queue_cursor']}"),
        ("refund list", "/refunds/"),
        ("refund list: SUCCEEDED", "/refunds/?status=SUCCEEDED"),
        ("refund list: FAILED", "/refunds/?status=FAILED"),
        ("refund list: merchant", f"/refunds/?merchant={m}"),
        ("refund list: source=user", "/refunds/?source=user"),
        ("refund list: merchant+MANUAL_PAYOUT", f"/refunds/?merchant={m}&status=MANUAL_PAYOUT"),
        ("refund list: merchant+source", f"/refunds/?merchant={m}&source=customer_service"),
        ("refund list: status+source", "/refunds/?status=FAILED&source=auto"),
        ("refund list: deep keyset", f"/refunds/?before={v['deep_cursor']}"),
        ("refund list: merchant deep keyset", f"/refunds/?merchant={m}&before={v['deep_cursor_merchant']}"),
        ("search: out_refund_no", f"/search/?q={v['out_refund_no']}"),
        ("search: out_trade_no", f"/search/?q={v['out_trade_no']}"),
        ("search: user id", f"/search/?q={v['user_id']}"),
        ("search: refund id", f"/search/?q={v['refund_id']}"),
        ("search: channel refund id", f"/search/?q={v['channel_refund_id']}"),
        ("search: no match", "/search/?q=NO-SUCH-ID"),
        ("complaints (working)", "/complaints/"),
        ("complaints: all", "/complaints/?status=all"),
        ("complaints: closed", "/complaints/?status=closed"),
        ("complaints: assignee", "/complaints/?status=all&assignee=agent2"),
        ("complaints: unassigned", "/complaints/?assignee=none"),
        ("complaints: merchant", f"/complaints/?status=all&merchant={m}"),
        ("complaints: category", "/complaints/?status=all&category=slow"),
        ("complaints: overdue", "/complaints/?overdue=1"),
        ("complaints: trade", f"/complaints/?status=all&trade={v['out_trade_no']}"),
        ("complaints: deep keyset", f"/complaints/?status=all&after={v['deep_complaint']}"),
        ("payouts: failed", "/payouts/?state=failed"),
        ("payouts: failed deep keyset", f"/payouts/?state=failed&after={v['deep_failed_leg']}"),
        ("payouts: card", "/payouts/?state=card"),
        ("payouts: card, merchant", f"/payouts/?state=card&merchant={m}"),
        ("payouts: failed, merchant", f"/payouts/?state=failed&merchant={m}"),
        ("payouts: approval", "/payouts/?state=approval"),
        ("payouts: paid", "/payouts/?state=paid"),
        ("payouts: paid deep keyset", f"/payouts/?state=paid&after={v['deep_paid_payout']}"),
        ("merchant list", "/merchants/"),
        ("merchant ledger page", f"/merchants/{m}/"),
        ("merchant ledger: deep keyset", f"/merchants/{m}/?after={v['deep_entry']}"),
        # Admin changelists
        ("admin refunds", "/admin/refunds/refund/"),
        ("admin refunds: page 2", "/admin/refunds/refund/?p=2"),
        ("admin refunds: page 5000", "/admin/refunds/refund/?p=5000"),
        ("admin refunds: status=SUCCEEDED", "/admin/refunds/refund/?status__exact=SUCCEEDED"),
        ("admin refunds: status=PENDING_REVIEW", "/admin/refunds/refund/?status__exact=PENDING_REVIEW"),
        ("admin refunds: source=user", "/admin/refunds/refund/?source__exact=user"),
        ("admin refunds: source+direction", "/admin/refunds/refund/?source__exact=merchant&direction__exact=original"),
        ("admin refunds: direction=balance", "/admin/refunds/refund/?direction__exact=balance"),
        ("admin refunds: search", f"/admin/refunds/refund/?q={v['out_refund_no']}"),
        ("admin refunds: sort by amount", "/admin/refunds/refund/?o=5"),
        ("admin payments", "/admin/refunds/payment/"),
        ("admin payments: page 2000", "/admin/refunds/payment/?p=2000"),
        ("admin payments: version=2", "/admin/refunds/payment/?record_version__exact=2"),
        ("admin payments: version=1 (none)", "/admin/refunds/payment/?record_version__exact=1"),
        ("admin payments: currency=USD (none)", "/admin/refunds/payment/?currency=USD"),
        ("admin payments: auto refund", "/admin/refunds/payment/?auto_refund_on_expiry__exact=1"),
        ("admin payments: search user", f"/admin/refunds/payment/?q={v['user_id']}"),
        ("admin ledger transactions", "/admin/merchants/ledgertransaction/"),
        ("admin ledger tx: kind=refund_paid", "/admin/merchants/ledgertransaction/?kind__exact=refund_paid"),
        ("admin ledger tx: kind=payment", "/admin/merchants/ledgertransaction/?kind__exact=payment"),
        ("admin ledger tx: kind=settlement (none)", "/admin/merchants/ledgertransaction/?kind__exact=settlement"),
        ("admin ledger tx: page 5000", "/admin/merchants/ledgertransaction/?p=5000"),
        ("admin ledger tx: search", f"/admin/merchants/ledgertransaction/?q={v['ledger_reference']}"),
        ("admin accounts", "/admin/merchants/account/"),
        ("admin account page (entries)", f"/admin/merchants/account/{v['merchant_id'] * 2 - 1}/change/"),
        ("admin complaints", "/admin/refunds/complaint/"),
        ("admin complaints: status=open", "/admin/refunds/complaint/?status__exact=open"),
        ("admin payouts", "/admin/refunds/manualpayout/"),
        ("admin payouts: status=paid", "/admin/refunds/manualpayout/?status__exact=paid"),
        ("admin webhook deliveries", "/admin/merchants/webhookdelivery/"),
        ("admin webhooks: status=dead", "/admin/merchants/webhookdelivery/?status__exact=dead"),
        ("admin webhooks: status=delivered", "/admin/merchants/webhookdelivery/?status__exact=delivered"),
        ("admin webhooks: event", "/admin/merchants/webhookdelivery/?event=refund.succeeded"),
        ("admin webhooks: audience=marketing", "/admin/merchants/webhookdelivery/?audience__exact=marketing"),
        ("admin webhooks: search refund", f"/admin/merchants/webhookdelivery/?q={v['refund_id']}"),
    ]


# ---------------------------------------------------------------------------------------------
# Measuring


class QueryTimer:
    """connection.execute_wrapper: the duration of every query, in ms, with its SQL."""

    def __init__(self):
        self.times: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            try:
                text = connection.ops.last_executed_query(context["cursor"], sql, params)
            except Exception:
                text = sql
            self.times.append((elapsed, text))


def measure(client, url: str, repeat: int) -> dict:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    samples = []
    for i in range(repeat + 1):  # the first is a warm-up, not counted
        cache.clear()
        timer = QueryTimer()
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            started, cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            elapsed, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
        slowest = max(timer.times, default=(0.0, ""))
        if i:
            samples.append((elapsed, len(captured.captured_queries), slowest, response.status_code, cpu))
    samples.sort(key=lambda s: s[0])
    elapsed, queries, (slow_ms, slow_sql), status, cpu = samples[len(samples) // 2]
    return {"ms": round(elapsed, 1), "queries": queries, "slowest_ms": round(slow_ms, 1), "slowest_sql": slow_sql,
            "status": status, "min_ms": round(samples[0][0], 1), "max_ms": round(samples[-1][0], 1),
            "python_cpu_ms": round(cpu, 1)}


def baselines(v: dict, repeat: int) -> list[tuple[str, dict]]:
    import psycopg

    def timed(sql, params=()):
        runs = []
        with psycopg.connect(seed_scale.DATABASE_URL) as conn:
            for i in range(repeat + 1):
                started = time.perf_counter()
                conn.execute(sql, params).fetchall()
                if i:
                    runs.append((time.perf_counter() - started) * 1000)
        return {"ms": round(statistics.median(runs), 2), "queries": 1, "slowest_ms": round(statistics.median(runs), 2),
                "slowest_sql": sql, "status": "", "min_ms": round(min(runs), 2), "max_ms": round(max(runs), 2),
                "python_cpu_ms": 0.0}

    return [
        ("SQL: keyset page, 90 % deep", timed(
            "SELECT * FROM refunds_refund WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT 51",
            [v["deep_created_at"], v["deep_id"]])),
        ("SQL: OFFSET page, 90 % deep", timed(
            "SELECT * FROM refunds_refund ORDER BY created_at DESC, id DESC OFFSET 900000 LIMIT 51")),
        ("SQL: SELECT COUNT(*) refunds", timed("SELECT COUNT(*) FROM refunds_refund")),
        ("SQL: COUNT(*) status=SUCCEEDED", timed("SELECT COUNT(*) FROM refunds_refund WHERE status = 'SUCCEEDED'")),
    ]


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(r[0] for r in cur.fetchall())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="", help="measure only screens whose name contains this")
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest query of slow screens")
    ap.add_argument("--sql", action="store_true", help="print the slowest query of every screen")
    ap.add_argument("--json", default="", help="write the results to this file")
    args = ap.parse_args(argv)

    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM refunds_refund WHERE out_refund_no = 'R0000500002'")
        if not cur.fetchone()[0]:
            sys.exit(f"{seed_scale.DB_NAME} is not seeded: run bench/seed_scale.py first")
        cur.execute("SELECT pg_size_pretty(pg_database_size(current_database())), reltuples::bigint "
                    "FROM pg_class WHERE relname = 'refunds_refund'")
        size, refunds = cur.fetchone()
    print(f"{seed_scale.DB_NAME}: {size}, ~{refunds:,} refunds; median of {args.repeat} requests, "
          f"budget {BUDGET_MS} ms", flush=True)

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    v = sample_values()
    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username=seed_scale.BENCH_USER))

    results = []
    for name, url in screens_to_measure(v):
        if args.only and args.only not in name:
            continue
        results.append((name, url, measure(client, url, args.repeat)))
    if not args.only:
        results += [(name, "", r) for name, r in baselines(v, args.repeat)]

    width = max(len(name) for name, _, _ in results)
    print(f"\n| {'screen':<{width}} | median ms | queries | slowest SQL ms | Python CPU ms | status |")
    print(f"|{'-' * (width + 2)}|----------:|--------:|---------------:|--------------:|-------:|")
    for name, _url, r in results:
        mark = " !" if r["status"] != "" and r["ms"] > BUDGET_MS else "  "
        print(f"| {name:<{width}} | {r['ms']:>7.1f}{mark} | {r['queries']:>7} | {r['slowest_ms']:>14.1f} | "
              f"{r['python_cpu_ms']:>13.1f} | {r['status']!s:>6} |")
    over = [name for name, _u, r in results if r["status"] != "" and r["ms"] > BUDGET_MS]
    print(f"\n{len(over)} screen(s) over {BUDGET_MS} ms" + (": " + ", ".join(over) if over else ""))
    print(f"load average before / after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          " (2 CPUs: above 2, other work inflated the times)")

    if args.sql or args.explain:
        for name, url, r in results:
            if args.sql or (r["status"] != "" and (r["ms"] > BUDGET_MS or r["slowest_ms"] > 20)):
                print(f"\n## {name}  {url}  ({r['ms']} ms, slowest query {r['slowest_ms']} ms)\n{r['slowest_sql']}")
                if args.explain and r["slowest_sql"] and r["slowest_sql"].lstrip().upper().startswith("SELECT"):
                    try:
                        print(explain(r["slowest_sql"]))
                    except Exception as exc:  # a query whose parameters did not survive the quoting
                        print(f"(no plan: {exc})")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"screen": name, "url": url, **{k: x for k, x in r.items()}} for name, url, r in results], indent=1,
            default=str))


if __name__ == "__main__":
    main()
