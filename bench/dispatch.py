"""Legs dispatched and results booked per second, with real Celery workers on Redis.

    timeout 900 .venv/bin/python bench/dispatch.py                # 500 refunds, -c 1 then -c 2
    .venv/bin/python bench/dispatch.py --refunds 200 --concurrency 1,2,4

Everything is local and nothing is left behind:
- a dedicated PostgreSQL database `bench_dispatch` (postgres://postgres@127.0.0.1:5432), created,
  migrated, and dropped at the end;
- a dedicated Redis database (redis://127.0.0.1:6379/6 unless --redis), flushed before and after;
- the notification endpoint served by gunicorn (`config.wsgi`, --web-workers sync workers) on a
  free local port, PUBLIC_BASE_URL pointing at it: the sandbox channels POST their signed
  notifications there, as the real ones would;
- per round, one `celery -A config worker -Q celery,dispatch --pool prefork -c C`; every process
  started is stopped (terminate, then kill its process group) whatever happens.

A round: N refunds, spread over 10 merchants and the three sandbox channels (wechat, alipay, bank;
amounts ending 00: accepted, then a success notification 0.3 s later), wait for review (merchant
review threshold 0). With the worker up and idle, all N are approved through
refunds.services.refund_approve in ONE transaction, then the dispatch relay runs once (as beat
does every second, refunds.dispatch.sweep with a limit of N), so the N `dispatch_leg` messages go
out at once; the clock starts then. Measured, by polling the database every 50 ms:
- legs dispatched/s: N / time until every leg's submission was answered by the channel and recorded
  (the worker's share: lock, attempt row, channel call, result);
- results booked/s: N / time until every refund is SUCCEEDED (the notifications, booked by the web
  processes through the same leg_apply_result, ledger included).
Each round is checked: exactly one submission attempt and one sandbox payout per leg, one
refund_paid ledger transaction per refund, every hold consumed, every account balance equal to
the sum of its entries.
"""

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"
DB_NAME = "bench_dispatch"
DATABASE_URL = f"{PG}/{DB_NAME}"
CHANNELS = ("wechat", "alipay", "bank")
N_MERCHANTS = 10
REFUND_AMOUNT = 3000  # ends in 00: accepted, then notified once (API.md, "Sandbox channels")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the live processes of one process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A subprocess in its own process group, logged to a file, always stopped."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log_tail(self, n=3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready ({needle!r}):\n{self.log_tail()}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # children whose parent is gone are still in the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


# ---------------------------------------------------------------------------------------------
# Database


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def migrate(env: dict) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env,
                   check=True)


def seed_round(tag: str, n: int) -> list:
    """N refunds pending review: merchants with a review threshold of 0, one payment per refund."""
    import datetime

    from django.db import transaction
    from django.utils import timezone

    from channels.models import Channel
    from merchants import services as money
    from refunds import services
    from refunds.models import Refund

    for code, window, dedupes in (("wechat", 365, True), ("alipay", 365, True), ("bank", 180, False)):
        Channel.objects.get_or_create(code=code, defaults=dict(
            name=code, adapter="sandbox", refund_window_days=window, dedupes_by_refund_no=dedupes))
    channels = list(CHANNELS)
    merchants = [money.merchant_create(code=f"BD{tag}{i:02d}", name=f"bench {tag} {i}", review_threshold=0)
                 for i in range(N_MERCHANTS)]
    paid_at = timezone.now() - datetime.timedelta(days=1)
    ids = []
    for k in range(n):
        m = merchants[k % N_MERCHANTS]
        ch = channels[k % len(channels)]
        with transaction.atomic():
            services.payment_ingest(
                merchant=m, out_trade_no=f"P{tag}-{k}", amount=10000, user_id=f"u-{k}", paid_at=paid_at,
                parts=[services.PartInput(kind="channel", amount=10000, channel=ch, channel_txn_id=f"t{tag}-{k}")],
            )
        refund, _ = services.refund_create(merchant=m, out_trade_no=f"P{tag}-{k}", out_refund_no=f"R{tag}-{k}",
                                           amount=REFUND_AMOUNT, actor="bench")
        assert refund.status == Refund.Status.PENDING_REVIEW, refund.status
        ids.append(refund.pk)
    return ids


def approve_all(refund_ids: list) -> float:
    """Approve every refund in one transaction and relay their legs; returns the monotonic time the
    messages were all sent."""
    from django.db import transaction

    from refunds import dispatch, services

    with transaction.atomic():
        for pk in refund_ids:
            services.refund_approve(refund_id=pk, by="bench:reviewer")
    relayed = dispatch.sweep(limit=len(refund_ids))  # every dispatch_leg message is on Redis now
    assert relayed == len(refund_ids), relayed
    return time.monotonic()


def check_round(refund_ids: list) -> list[str]:
    from django.db import connection
    from django.db.models import Count

    from channels.models import SandboxPayout
    from merchants.models import Account, LedgerTransaction
    from refunds.models import Refund, RefundLeg, SubmissionAttempt

    problems = []
    n = len(refund_ids)
    legs = RefundLeg.objects.filter(refund_id__in=refund_ids)
    if (got := Refund.objects.filter(pk__in=refund_ids, status="SUCCEEDED").count()) != n:
        problems.append(f"{n - got} refunds not SUCCEEDED")
    per_leg = legs.annotate(a=Count("attempts")).exclude(a=1).count()
    if per_leg:
        problems.append(f"{per_leg} legs without exactly one submission attempt")
    submission_nos = [f"RL{pk:012d}" for pk in legs.values_list("pk", flat=True)]
    payouts = SandboxPayout.objects.filter(refund_no__in=submission_nos).values("refund_no").annotate(c=Count("id"))
    if len(payouts) != n or any(p["c"] != 1 for p in payouts):
        problems.append("sandbox payouts are not exactly one per leg")
    paid = LedgerTransaction.objects.filter(kind="refund_paid", reference__in=[f"refund:{pk}" for pk in refund_ids])
    if paid.count() != n:
        problems.append(f"{paid.count()} refund_paid transactions for {n} refunds")
    if SubmissionAttempt.objects.filter(leg__refund_id__in=refund_ids).exclude(status="ACCEPTED").exists():
        problems.append("attempts not ACCEPTED")
    held = Account.objects.filter(kind="refund_hold", merchant__code__startswith="BD").exclude(balance=0).count()
    if held:
        problems.append(f"{held} refund-hold accounts not back to 0")
    with connection.cursor() as cur:
        cur.execute("""
            SELECT count(*) FROM merchants_account a
            LEFT JOIN (SELECT account_id, sum(amount) s FROM merchants_ledgerentry GROUP BY 1) e ON e.account_id = a.id
            WHERE a.balance <> coalesce(e.s, 0)""")
        if (bad := cur.fetchone()[0]):
            problems.append(f"{bad} accounts whose balance != sum of entries")
    return problems


def warm_up(base_url: str, web_workers: int) -> None:
    """Every gunicorn worker loads the URLconf and opens its database connection on its first
    request (seconds on a busy machine, longer than a channel waits: it would retry). Do it first."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def hit(_):
        return requests.post(f"{base_url}/api/v1/channels/warm-up/notify", data=b"{}", timeout=60).status_code

    with ThreadPoolExecutor(web_workers * 2) as pool:
        for _ in range(3):
            codes = set(pool.map(hit, range(web_workers * 4)))
    if codes != {404}:
        raise RuntimeError(f"warm-up of the web processes answered {codes}")


# ---------------------------------------------------------------------------------------------
# One round


def run_round(*, concurrency: int, n: int, env: dict, log_dir: Path, timeout: float, redis_client, web) -> dict:
    from django.db import close_old_connections

    from refunds.models import Refund, SubmissionAttempt

    tag = f"c{concurrency}"
    redis_client.flushdb()
    ids = seed_round(tag, n)
    worker = Proc(f"worker-{tag}", [str(BIN / "celery"), "-A", "config", "worker", "-Q", "celery,dispatch",
                                    "--pool", "prefork", "-c", str(concurrency), "--loglevel", "WARNING",
                                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                                    "-n", f"bench-{tag}@%h"], env, log_dir)
    try:
        # WARNING level hides the banner's "ready": ask the worker itself instead.
        deadline = time.monotonic() + 60
        from config import celery_app

        while not celery_app.control.ping(timeout=0.5):  # only this round's worker listens on this Redis db
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker -c {concurrency} did not start:\n{worker.log_tail()}")
        cpu0 = group_cpu_seconds(worker.proc.pid), group_cpu_seconds(web.proc.pid)
        t0 = approve_all(ids)
        answered = SubmissionAttempt.objects.filter(leg__refund_id__in=ids).exclude(status="SENDING")
        succeeded = Refund.objects.filter(pk__in=ids, status="SUCCEEDED")
        t_dispatched = t_booked = None
        samples = []
        while time.monotonic() - t0 < timeout:
            close_old_connections()
            a, s = answered.count(), succeeded.count()
            now = time.monotonic()
            samples.append((now - t0, a, s))
            if t_dispatched is None and a >= n:
                t_dispatched = now
            if s >= n:
                t_booked = now
                break
            time.sleep(0.05)
        if t_booked is None:
            raise RuntimeError(f"-c {concurrency}: not done after {timeout}s (dispatched {a}, booked {s} of {n})\n"
                               f"{worker.log_tail()}")
        t_dispatched = t_dispatched or t_booked
        time.sleep(0.5)  # the last notifications' requests end
        cpu_worker = group_cpu_seconds(worker.proc.pid) - cpu0[0]
        cpu_web = group_cpu_seconds(web.proc.pid) - cpu0[1]
    finally:
        worker.stop()
    problems = check_round(ids)
    mid = [x for x in samples if n * 0.1 <= x[1] <= n * 0.9]  # steady state: 10%..90% dispatched
    steady = ((mid[-1][1] - mid[0][1]) / (mid[-1][0] - mid[0][0])) if len(mid) > 1 and mid[-1][0] > mid[0][0] else None
    return {
        "processes": concurrency, "n": n, "dispatch_s": t_dispatched - t0, "booked_s": t_booked - t0,
        "legs_per_s": n / (t_dispatched - t0), "booked_per_s": n / (t_booked - t0), "steady_legs_per_s": steady,
        "worker_cpu_ms": cpu_worker * 1000 / n, "web_cpu_ms": cpu_web * 1000 / n, "problems": problems,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refunds", type=int, default=500)
    ap.add_argument("--concurrency", default="1,2", help="worker processes per round, comma-separated")
    ap.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers for the notifications")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/6", help="a Redis database of its own: it is flushed")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per round before giving up")
    ap.add_argument("--keep-db", action="store_true", help="do not drop bench_dispatch at the end")
    args = ap.parse_args(argv)
    rounds = [int(c) for c in args.concurrency.split(",")]

    import redis

    redis_client = redis.Redis.from_url(args.redis)
    redis_client.ping()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=DATABASE_URL, CELERY_BROKER_URL=args.redis,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        DB_CONN_MAX_AGE="60", LOG_LEVEL="WARNING", DEBUG="0", SANDBOX_SUBMIT_DELAY="0",
    )
    os.environ.update(env)  # this process too (it creates and approves the refunds, and polls)
    for k in [k for k in os.environ if k.startswith("CELERY_") and k != "CELERY_BROKER_URL"]:
        del os.environ[k]
    log_dir = ROOT / "var" / "bench_dispatch_logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    procs: list[Proc] = []
    results = []
    started = time.monotonic()
    try:
        print(f"creating and migrating {DB_NAME} ...", flush=True)
        recreate_database()
        migrate(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        web = Proc("web", [str(BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
                           "-w", str(args.web_workers), "--log-level", "warning"], env, log_dir)
        procs.append(web)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if web.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start:\n{web.log_tail()}") from None
                time.sleep(0.2)
        warm_up(f"http://127.0.0.1:{port}", args.web_workers)
        for c in rounds:
            print(f"round: {args.refunds} refunds, worker -c {c} ...", flush=True)
            r = run_round(concurrency=c, n=args.refunds, env=env, log_dir=log_dir, timeout=args.timeout,
                          redis_client=redis_client, web=web)
            results.append(r)
            print(f"  dispatched in {r['dispatch_s']:.2f}s, booked in {r['booked_s']:.2f}s"
                  f"{'; PROBLEMS: ' + '; '.join(r['problems']) if r['problems'] else ', checks OK'}", flush=True)
    finally:
        for p in procs:
            p.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        redis_client.flushdb()
        if not args.keep_db:
            drop_database()

    base = results[0] if results else None
    print()
    print(f"{args.refunds} refunds per round, 10 merchants, channels {'/'.join(CHANNELS)}; "
          f"web: gunicorn -w {args.web_workers}; host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'processes':>9} | {'legs/s dispatched':>17} | {'(steady 10-90%)':>15} | {'results booked/s':>16} | "
          f"{'ratio vs 1 process':>18} | {'worker CPU ms/leg':>17} | {'web CPU ms/leg':>14}")
    for r in results:
        steady = f"{r['steady_legs_per_s']:.0f}" if r["steady_legs_per_s"] else "-"
        ratio = f"{r['legs_per_s'] / base['legs_per_s']:.2f} / {r['booked_per_s'] / base['booked_per_s']:.2f}"
        print(f"{r['processes']:>9} | {r['legs_per_s']:>17.1f} | {steady:>15} | {r['booked_per_s']:>16.1f} | "
              f"{ratio:>18} | {r['worker_cpu_ms']:>17.1f} | {r['web_cpu_ms']:>14.1f}")
    print("ratio: dispatched / booked, against the first round; CPU: the worker's process group (main process and"
          " pool), and gunicorn's, per leg, while the round ran")
    print(f"total {time.monotonic() - started:.0f}s; database {DB_NAME} "
          f"{'kept' if args.keep_db else 'dropped'}, {args.redis} flushed, every process stopped")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
