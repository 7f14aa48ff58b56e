"""Refunds created per second: refunds.services.refund_create against the same transaction in raw SQL.

    timeout 900 .venv/bin/python bench/refund_create.py            # seed, measure, print the table
    .venv/bin/python bench/refund_create.py --no-seed --duration 10 --runs 1
    .venv/bin/python bench/refund_create.py --no-seed --profile 2000   # cProfile one process

Two shapes, each measured `--runs` times (median reported), interleaved so that table growth and
checkpoints hit every contender alike:
- spread: every refund goes to a random payment of a random merchant among `--merchants`;
- one:    every refund goes to the same merchant (its two account rows are shared by all).
Three contenders per run, each with `--workers` concurrent connections for `--duration` seconds:
- service:  `--workers` processes (multiprocessing, spawn), each with django.setup() and its own
            connection, calling refund_create(amount=100) in a loop;
- raw:      pgbench -c W -j 2 -T D with bench/refund_create.pgbench.sql: the same writes, in the
            same order and transaction, with the fewest round trips (15);
- raw-full: pgbench with bench/refund_create_full.pgbench.sql: every statement the service sends
            (16 round trips, its reads included);
- raw-accounts-last (experiment, not run by default): raw with the ledger rows inserted before the
            account rows are updated.
Besides refunds/s it reports CPU per refund (clients + PostgreSQL backends, from /proc), which
depends much less than the rate on other load on the machine.
Every worker / pgbench client refunds its own payments (index mod W), 100 fen at a time, so payment
rows are never contended; only successes count, errors are reported, and every count is checked
against the rows that landed in the database. The ledger is checked at the end.
"""

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import seed  # noqa: E402

PGBENCH_SCRIPTS = {
    "raw": HERE / "refund_create.pgbench.sql",
    "raw-full": HERE / "refund_create_full.pgbench.sql",
    "raw-accounts-last": HERE / "refund_create_accounts_last.pgbench.sql",
}
PREFIX = {"service": "svc", "raw": "pgb", "raw-full": "pgbf", "raw-accounts-last": "pgbl"}
PG_ARGS = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
WARMUP = 10  # refunds per worker before each measurement (caches, the shape's rows)


# ---------------------------------------------------------------------------------------------
# Database helpers (plain psycopg: the parent process never needs Django except to seed/profile)


def sql(query: str, params=None, *, autocommit=True):
    import psycopg

    with psycopg.connect(seed.DATABASE_URL, autocommit=autocommit) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def prepare_run() -> None:
    """Fresh statistics (the seed analysed empty refund tables) and no checkpoint mid-run."""
    sql(
        "ANALYZE refunds_refund, refunds_refundleg, refunds_refundevent, refunds_payment, refunds_paymentpart, "
        "merchants_account, merchants_ledgertransaction, merchants_ledgerentry"
    )
    sql("CHECKPOINT")


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before, after) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return 100.0 * busy / total if total else 0.0


def background_busy(seconds=1.0) -> float:
    """How busy the CPUs are while this benchmark runs nothing (other people's work)."""
    before = cpu_times()
    time.sleep(seconds)
    return busy_share(before, cpu_times())


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids) -> float:
    """CPU seconds (user + system) used so far by these processes; vanished ones count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / CLK_TCK


def bench_backends() -> list[int]:
    """PIDs of the PostgreSQL backends serving the benchmark's clients (not this process)."""
    return [
        r[0]
        for r in sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()",
            [seed.DB_NAME],
        )
    ]


def cpu_window(kind, run_id, client_pids, duration) -> dict:
    """Sample the middle of a running measurement: refunds landed and CPU seconds spent by the
    clients (service workers or pgbench) and by their PostgreSQL backends, per refund. Unlike the
    rate, this hardly depends on what else keeps the machine busy."""
    time.sleep(min(2.0, duration / 4))
    backends = bench_backends()
    n0, c0, s0 = rows_landed(kind, run_id), proc_cpu(client_pids), proc_cpu(backends)
    time.sleep(max(1.0, duration - min(2.0, duration / 4) - 1.5))
    n1, c1, s1 = rows_landed(kind, run_id), proc_cpu(client_pids), proc_cpu(backends)
    n = max(n1 - n0, 1)
    return {"client_ms": 1000 * (c1 - c0) / n, "server_ms": 1000 * (s1 - s0) / n}


def rows_landed(kind: str, run_id: int) -> int:
    return sql("SELECT count(*) FROM refunds_refund WHERE out_refund_no LIKE %s", [f"{PREFIX[kind]}-{run_id}-%"])[0][0]


def shape_merchants(shape: str, n_merchants: int) -> list[tuple[int, str]]:
    rows = sql(
        "SELECT id, code FROM merchants_merchant WHERE code LIKE %s ORDER BY code", [seed.MERCHANT_PREFIX + "%"]
    )
    if len(rows) < n_merchants:
        sys.exit(f"{seed.DB_NAME} holds {len(rows)} bench merchants, {n_merchants} asked: run without --no-seed")
    rows = rows[:n_merchants] if shape == "spread" else rows[:1]
    ids = [r[0] for r in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "bench merchants must have consecutive ids"
    return rows


def payments_per_merchant() -> int:
    return sql(
        "SELECT count(*) FROM refunds_payment p JOIN merchants_merchant m ON m.id = p.merchant_id WHERE m.code = %s",
        [seed.merchant_code(0)],
    )[0][0]


def check_consistency() -> list[str]:
    problems = []
    checks = {
        "account balance != sum of its entries": """
            SELECT count(*) FROM merchants_account a
            LEFT JOIN (SELECT account_id, sum(amount) s FROM merchants_ledgerentry GROUP BY 1) e ON e.account_id = a.id
            WHERE a.balance <> coalesce(e.s, 0)""",
        "unbalanced ledger transactions": """
            SELECT count(*) FROM (SELECT transaction_id FROM merchants_ledgerentry GROUP BY 1, currency
                                  HAVING sum(amount) <> 0) x""",
        "payment refunded_amount != sum of its counting refunds": """
            SELECT count(*) FROM refunds_payment p
            LEFT JOIN (SELECT payment_id, sum(amount) s FROM refunds_refund
                       WHERE status NOT IN ('REJECTED', 'CANCELLED') GROUP BY 1) r ON r.payment_id = p.id
            WHERE p.refunded_amount <> coalesce(r.s, 0)""",
        "part refunded_amount != sum of its legs": """
            SELECT count(*) FROM refunds_paymentpart pp
            LEFT JOIN (SELECT payment_part_id, sum(amount) s FROM refunds_refundleg
                       WHERE status <> 'CANCELLED' GROUP BY 1) l ON l.payment_part_id = pp.id
            WHERE pp.refunded_amount <> coalesce(l.s, 0)""",
        "refund hold != its legs' holds": """
            SELECT count(*) FROM refunds_refund r
            JOIN (SELECT refund_id, sum(hold_amount) s FROM refunds_refundleg GROUP BY 1) l ON l.refund_id = r.id
            WHERE r.hold_amount <> l.s AND r.status NOT IN ('REJECTED', 'CANCELLED')""",
    }
    for label, query in checks.items():
        n = sql(query)[0][0]
        if n:
            problems.append(f"{n} {label}")
    return problems


# ---------------------------------------------------------------------------------------------
# The service, in W processes


def _service_worker(w, n_workers, n_payments, commands, barrier, results):
    """One of the W service processes: set up once, then measure whenever the parent says so."""
    seed.setup_django()
    from django.db import connection

    from merchants.models import Merchant
    from refunds.services import refund_create

    by_code = {m.code: m for m in Merchant.objects.filter(code__startswith=seed.MERCHANT_PREFIX)}
    own = range(w, n_payments, n_workers)  # this worker's payments, never touched by another
    try:
        while (cmd := commands.get()) is not None:
            codes, run_id, duration = cmd
            merchants = [by_code[c] for c in codes]
            rnd = random.Random(run_id * 100 + w)

            def one(out_refund_no, merchants=merchants, rnd=rnd):
                m = rnd.choice(merchants)
                return refund_create(
                    merchant=m, out_trade_no=seed.out_trade_no(rnd.choice(own)), out_refund_no=out_refund_no,
                    amount=100, actor=f"api:{m.code}",
                )

            errors = Counter()
            for i in range(WARMUP):  # not counted: caches, this shape's rows
                try:
                    one(f"warm-{run_id}-{w}-{i}")
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    errors[f"warm-up {type(e).__name__}: {e}"[:200]] += 1
            ok, late = 0, 0
            barrier.wait(timeout=300)
            deadline = time.monotonic() + duration
            i = 0
            while time.monotonic() < deadline:
                i += 1
                try:
                    _, created = one(f"svc-{run_id}-{w}-{i}")
                except Exception as e:  # noqa: BLE001
                    errors[f"{type(e).__name__}: {e}"[:200]] += 1
                    continue
                if not created:
                    errors["replayed (not created)"] += 1
                elif time.monotonic() <= deadline:
                    ok += 1
                else:
                    late += 1  # committed after the clock stopped: in the database, not in the rate
            results.put({"w": w, "ok": ok, "late": late, "errors": dict(errors)})
    finally:
        connection.close()


class ServicePool:
    """W spawned processes with django.setup() and a connection each, kept across measurements."""

    def __init__(self, n_workers: int, n_payments: int):
        ctx = mp.get_context("spawn")
        self.n = n_workers
        self.barrier = ctx.Barrier(n_workers + 1)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(n_workers)]
        self.procs = [
            ctx.Process(target=_service_worker, args=(w, n_workers, n_payments, self.commands[w], self.barrier,
                                                      self.results), daemon=True)
            for w in range(n_workers)
        ]
        for p in self.procs:
            p.start()

    def measure(self, codes, duration, run_id) -> dict:
        for q in self.commands:
            q.put((codes, run_id, duration))
        self.barrier.wait(timeout=600)  # every worker set up and warmed up: go
        cpu = cpu_window("service", run_id, [p.pid for p in self.procs], duration)
        out = [self.results.get(timeout=duration + 300) for _ in range(self.n)]
        ok = sum(r["ok"] for r in out)
        errors = sum((Counter(r["errors"]) for r in out), Counter())
        landed = rows_landed("service", run_id)
        expected = ok + sum(r["late"] for r in out)
        if landed != expected:
            errors[f"count mismatch: workers say {expected} created, database holds {landed}"] += 1
        return {"rate": ok / duration, "errors": errors, **cpu}

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(5)


# ---------------------------------------------------------------------------------------------
# Raw SQL, through pgbench


def run_pgbench(kind, m0, n_merchants, n_payments, n_clients, threads, duration, run_id) -> dict:
    cmd = [
        "pgbench", *PG_ARGS, "-n", "-c", str(n_clients), "-j", str(threads), "-T", str(duration),
        "-f", str(PGBENCH_SCRIPTS[kind]), "-D", f"m0={m0}", "-D", f"nm={n_merchants}", "-D", f"np={n_payments}",
        "-D", f"nc={n_clients}", "-D", f"run={run_id}", seed.DB_NAME,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cpu = cpu_window(kind, run_id, [proc.pid], duration)
        stdout, stderr = proc.communicate(timeout=duration + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout + stderr
    errors = Counter()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    processed = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    if proc.returncode != 0 or tps is None:
        errors[f"pgbench exit {proc.returncode}: {text.strip()[-400:]}"] += 1
    for line in text.splitlines():
        if "aborted" in line or "error" in line.lower():
            errors[line.strip()[:200]] += 1
    if failed and int(failed.group(1)):
        errors["failed transactions"] += int(failed.group(1))
    landed = rows_landed(kind, run_id)
    if processed and landed != int(processed.group(1)):
        errors[f"count mismatch: pgbench says {processed.group(1)}, database holds {landed}"] += 1
    return {"rate": float(tps.group(1)) if tps else 0.0, "errors": errors, **cpu}


def service_statements() -> list[str]:
    """What one refund_create sends today, shortened: to see at a glance whether the pgbench
    scripts still mirror it (they were written for 16 statements)."""
    seed.setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from merchants.models import Merchant
    from refunds.services import refund_create

    m = Merchant.objects.get(code=seed.merchant_code(0))
    tag = int(time.time())
    refund_create(merchant=m, out_trade_no=seed.out_trade_no(0), out_refund_no=f"probe-{tag}-0", amount=100, actor="probe")
    with CaptureQueriesContext(connection) as cq:
        refund_create(merchant=m, out_trade_no=seed.out_trade_no(0), out_refund_no=f"probe-{tag}-1", amount=100,
                      actor="probe")
    connection.close()
    heads = []
    for q in cq.captured_queries:
        text = q["sql"]
        verb = text.split(None, 1)[0]
        table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', text)
        heads.append(verb + (f" {table.group(1)}" if table else "") + (" FOR UPDATE" if "FOR UPDATE" in text else ""))
    return heads


# ---------------------------------------------------------------------------------------------
# Profile: one process, no contention


def measure_plain(loop, n: int, unit: str, prefix: str) -> str:
    """Run `loop(n, prefix)` without a profiler: ms per `unit` (wall, Python CPU), queries per
    unit and the time inside cursor.execute (round trip + server + psycopg)."""
    from django.db import connection

    db = {"time": 0.0, "calls": 0}

    def timed(execute, query, params, many, context):
        t = time.perf_counter()
        try:
            return execute(query, params, many, context)
        finally:
            db["time"] += time.perf_counter() - t
            db["calls"] += 1

    with connection.execute_wrapper(timed):
        t0, c0 = time.perf_counter(), time.process_time()
        loop(n, prefix)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (f"{1000 * wall / n:.2f} ms/{unit} wall ({n / wall:.0f}/s), {1000 * cpu / n:.2f} ms/{unit} Python CPU; "
            f"{db['calls'] / n:.1f} queries/{unit}, {1000 * db['time'] / n:.2f} ms/{unit} inside cursor.execute")


def print_cprofile(loop, n: int, unit: str, prefix: str, limits=(("tottime", 25), ("cumulative", 45))) -> None:
    """Run `loop(n, prefix)` under cProfile, CPU time only (time.process_time: waiting for
    PostgreSQL does not count), and print the top functions."""
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    loop(n, prefix)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # sum of tottime = all profiled CPU
    print(f"\n--- cProfile (CPU time), {n} {unit}s: {1000 * total / n:.2f} ms CPU/{unit} under the profiler ---")
    for key, limit in limits:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(limit)
        print(f"\n--- top {limit} by {key} ---")
        print(buf.getvalue().split("\n", 5)[-1].rstrip())


def profile(n: int, n_merchants: int) -> None:
    seed.setup_django()

    from merchants.models import Merchant
    from refunds.services import refund_create

    merchants = list(Merchant.objects.filter(code__startswith=seed.MERCHANT_PREFIX).order_by("code")[:n_merchants])
    n_payments = payments_per_merchant()
    rnd = random.Random(7)
    tag = int(time.time())

    def loop(count, prefix):
        for i in range(count):
            m = rnd.choice(merchants)
            refund_create(
                merchant=m, out_trade_no=seed.out_trade_no(rnd.randrange(n_payments)),
                out_refund_no=f"{prefix}-{tag}-{i}", amount=100, actor=f"api:{m.code}",
            )

    loop(50, "pwarm")
    prepare_run()
    print(f"\nOne process, {n} refunds, no profiler: {measure_plain(loop, n, 'refund', 'pplain')}")
    for kind in ("raw", "raw-full"):
        r = run_pgbench(kind, merchants[0].pk, len(merchants), n_payments, 1, 1, 5, tag)
        print(f"pgbench {kind}, 1 client: {1000 / r['rate']:.2f} ms/refund ({r['rate']:.0f}/s)"
              + (f"  errors: {dict(r['errors'])}" if r["errors"] else ""))
    print_cprofile(loop, n, "refund", "pprof")


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=15, help="seconds per measurement (default 15)")
    ap.add_argument("--runs", type=int, default=3, help="measurements per contender and shape; median shown")
    ap.add_argument("--workers", type=int, default=8, help="service processes = pgbench clients (default 8)")
    ap.add_argument("--threads", type=int, default=2, help="pgbench -j (default 2)")
    ap.add_argument("--merchants", type=int, default=64)
    ap.add_argument("--payments", type=int, default=2000, help="payments per merchant (seed)")
    ap.add_argument("--shapes", default="spread,one")
    ap.add_argument("--contenders", default="service,raw,raw-full",
                    help="any of service, raw, raw-full, raw-accounts-last (comma-separated)")
    ap.add_argument("--no-seed", action="store_true", help="reuse the existing bench_refunds database")
    ap.add_argument("--profile", type=int, metavar="N", help="only profile N refunds in one process (no seed)")
    args = ap.parse_args(argv)

    if args.profile:
        profile(args.profile, args.merchants)
        return
    if not args.no_seed:
        seed.run(args.merchants, args.payments)
    n_payments = payments_per_merchant()
    heads = service_statements()
    print(f"refund_create sends {len(heads)} statements: " + ", ".join(heads), flush=True)
    if len(heads) != 16:
        print("WARNING: the pgbench scripts mirror 16 statements; refund_create changed, check them", flush=True)
    if n_payments % args.workers:
        sys.exit(f"payments per merchant ({n_payments}) must be a multiple of --workers ({args.workers})")
    contenders = args.contenders.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    base = int(time.time()) % 10**8 * 100
    run_no = 0
    t_start = time.monotonic()
    pool = ServicePool(args.workers, n_payments) if "service" in contenders else None
    try:
        for shape in args.shapes.split(","):
            rows = shape_merchants(shape, args.merchants)
            codes, m0 = [r[1] for r in rows], rows[0][0]
            for rep in range(args.runs):
                for kind in contenders:
                    run_no += 1
                    run_id = base + run_no
                    prepare_run()
                    bg = background_busy()
                    c0 = cpu_times()
                    if kind == "service":
                        r = pool.measure(codes, args.duration, run_id)
                    else:
                        r = run_pgbench(kind, m0, len(codes), n_payments, args.workers, args.threads, args.duration,
                                        run_id)
                    r["bg"], r["busy"] = bg, busy_share(c0, cpu_times())
                    results.setdefault((shape, kind), []).append(r)
                    extra = f"  cpu/refund: client {r['client_ms']:5.2f} ms + postgres {r['server_ms']:5.2f} ms"
                    errs = f"  ERRORS {dict(r['errors'])}" if r["errors"] else ""
                    print(f"[{time.monotonic() - t_start:5.0f}s] {shape:6} run {rep + 1} {kind:17} "
                          f"{r['rate']:8.1f} refunds/s   cpu busy before {bg:3.0f}% / during {r['busy']:3.0f}%"
                          f"{extra}{errs}", flush=True)
    finally:
        if pool is not None:
            pool.close()

    problems = check_consistency()
    med = {key: statistics.median(r["rate"] for r in rs) for key, rs in results.items()}
    print()
    print(f"refund_create, {args.workers} concurrent connections, {args.duration}s x {args.runs} runs "
          f"(median), {seed.DB_NAME}, {os.cpu_count()} CPUs shared by workers and PostgreSQL")
    ratios = [k for k in ("raw", "raw-full") if k in contenders] if "service" in contenders else []
    cols = [f"{k} /s" for k in contenders] + [f"service/{k}" for k in ratios]
    width = max(12, *(len(c) + 2 for c in cols))
    head = f"{'shape':<22}" + "".join(f"{c:>{width}}" for c in cols)
    print(head)
    print("-" * len(head))
    for shape in args.shapes.split(","):
        label = f"spread ({args.merchants} merchants)" if shape == "spread" else "one merchant"
        line = f"{label:<22}" + "".join(f"{med[(shape, k)]:>{width}.1f}" for k in contenders)
        line += "".join(f"{med[(shape, 'service')] / med[(shape, k)]:>{width}.2f}" for k in ratios)
        print(line)
    print("\nCPU per refund, ms (client + PostgreSQL backends; median; client = Python workers or pgbench):")
    head = f"{'shape':<22}" + "".join(f"{k:>{width}}" for k in contenders)
    print(head)
    print("-" * len(head))
    for shape in args.shapes.split(","):
        label = f"spread ({args.merchants} merchants)" if shape == "spread" else "one merchant"
        cells = []
        for k in contenders:
            rs = results[(shape, k)]
            c, b = statistics.median(r["client_ms"] for r in rs), statistics.median(r["server_ms"] for r in rs)
            cells.append(f"{c:.1f} + {b:.1f}")
        print(f"{label:<22}" + "".join(f"{c:>{width}}" for c in cells))
    bgs = [r["bg"] for rs in results.values() for r in rs]
    print(f"\nCPU busy with other work just before the runs: median {statistics.median(bgs):.0f}% "
          f"(min {min(bgs):.0f}%, max {max(bgs):.0f}%); load average now {os.getloadavg()[0]:.1f}")
    n_err = sum(sum(r["errors"].values()) for rs in results.values() for r in rs)
    print(f"\nerrors: {n_err}" + ("" if not n_err else " (see the per-run lines above)"))
    print("ledger and payment totals consistent" if not problems else "INCONSISTENT: " + "; ".join(problems))


if __name__ == "__main__":
    main()
