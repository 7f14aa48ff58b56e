"""Load test of `POST /api/v1/refunds` under gunicorn, beside the raw-SQL ceiling of the same refund.

    timeout 1200 .venv/bin/python bench/api_load.py                  # seeds bench_api, then measures
    timeout 1200 .venv/bin/python bench/api_load.py --no-seed --baseline-dir /tmp/api_before

What runs (see bench/README.md, "api_load"):
- the server: `gunicorn config.wsgi -w N` (sync workers, the production way), DEBUG off, on the
  dedicated database `bench_api` (dropped and recreated unless --no-seed), with Celery pointed at
  Redis (`--redis`, a database number of its own: FLUSHED before and after; no Celery worker
  consumes it). A request publishes nothing: its QUEUED leg is the dispatch outbox, which the
  relay (beat, in the worker tier; not running here) hands to the workers. The rate limit still counts every
  request (`API_RATE_LIMIT` is raised so that it never refuses one);
- the load: 16 client threads in this process (`--clients`), one loopback HTTP connection per
  request (a sync worker closes it after each answer), each POSTing 100-fen refunds of its own
  payments (payment index mod clients, so payment rows are never contended) with a merchant's
  `refunds` API key, for `--duration` seconds or `--max-requests` requests, whichever comes first;
- two shapes: spread (a random merchant of 64 per request) and one merchant (every request hits
  that merchant's account rows and its API key's rate-limit row);
- the ceiling: `pgbench -c 16 -f bench/refund_create.pgbench.sql` (the same refund's writes in one
  transaction, fewest round trips) on the same database, measured in turn with the API in every
  run, so that other load on the machine hits both alike.
- `--baseline-dir DIR`: a second gunicorn serving a copy of the code from DIR (same database,
  same schema) measured in turn too: before/after figures from the same run.

The medians of `--runs` runs are printed; every 201 is checked against the refunds that landed,
every other answer is counted as an error with its status and body, and at the end the ledger and
payment totals are checked (bench/refund_create.py's checks). Only 127.0.0.1 is contacted.
"""

import argparse
import http.client
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import refund_create as rc  # noqa: E402
import seed  # noqa: E402

# A database of its own: bench/refund_create.py may run on bench_refunds at the same time.
seed.DB_NAME = "bench_api"
seed.DATABASE_URL = f"{seed.PG}/{seed.DB_NAME}"
rc.PREFIX.update({"api": "api", "api-conn0": "apic", "api-before": "apib"})
BIN = ROOT / ".venv" / "bin"
WARMUP_PER_WORKER = 8


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    """One gunicorn master with N sync workers, serving the code in `app_dir`."""

    def __init__(self, name: str, app_dir: Path, port: int, workers: int, env: dict, log_dir: Path):
        self.name, self.port, self.workers, self.env = name, port, workers, env
        self.log = open(log_dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "config.wsgi:application", "--chdir", str(app_dir), "-b", f"127.0.0.1:{port}",
             "-w", str(workers), "--backlog", "2048", "--log-level", "warning", "--timeout", "60"],
            cwd=app_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn {name} did not start, see {self.log.name}") from None
                time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                            pids.append(int(entry))
                except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                    pass
        return pids

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


RELAY_LOOP = """
import time
import django
django.setup()
from refunds import dispatch
while True:
    dispatch.relay()
    time.sleep(1)
"""


class Relay:
    """`--with-relay`: the dispatch relay as beat runs it, every second, in a process of its own on
    the same CPUs, publishing the new legs' dispatch_leg messages to Redis. No worker consumes
    them, so DISPATCH_RELAY_GRACE is made huge: a relayed leg is not sent again, as if a worker
    had taken it."""

    def __init__(self, env: dict, log_dir: Path):
        self.log = open(log_dir / "relay.log", "w")
        self.proc = subprocess.Popen([str(BIN / "python"), "-c", RELAY_LOOP], cwd=ROOT,
                                     env={**env, "DISPATCH_RELAY_GRACE": str(10**8)},
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def drain(self, timeout: float = 600) -> None:
        """Wait until the legs of earlier runs are relayed (about 3,000/s), before measuring."""
        from refunds.models import RefundLeg

        deadline = time.monotonic() + timeout
        while RefundLeg.objects.filter(status=RefundLeg.Status.QUEUED, next_action_at__isnull=True).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not drain the backlog, see {self.log.name}")
            time.sleep(1)

    def pause(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    @staticmethod
    def skip_legs_of(out_refund_no_like: str) -> None:
        """pgbench's refunds are not the API's: their legs are marked relayed, so that draining
        them does not load the next API measurement."""
        rc.sql("UPDATE refunds_refundleg SET next_action_at = now() + interval '100 years' WHERE status = 'QUEUED' "
               "AND refund_id IN (SELECT id FROM refunds_refund WHERE out_refund_no LIKE %s)", [out_refund_no_like])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The load client


def post_refund(port: int, key: str, body: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/refunds", body=json.dumps(body),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def load(*, port, keys, prefix, run_id, clients, n_payments, duration, max_requests, cpu_pids, pg_cpu=True,
         relay_pids=()) -> dict:
    """`clients` threads POST refunds until `duration` s have passed or `max_requests` were sent."""
    merchants = list(keys)  # merchant code -> raw key
    per_client = n_payments // clients
    budget = itertools.count()  # next() is atomic under the GIL: a shared request budget
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[Counter] = [Counter() for _ in range(clients)]
    ok = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(c: int) -> None:
        rnd = random.Random(f"{run_id}-{c}")
        start.wait()
        for i in itertools.count():
            if time.perf_counter() >= stop_at[0] or (max_requests and next(budget) >= max_requests):
                return
            code = rnd.choice(merchants)
            body = {"out_trade_no": seed.out_trade_no(c + clients * rnd.randrange(per_client)),
                    "out_refund_no": f"{prefix}-{run_id}-{c}-{i}", "amount": 100}
            t0 = time.perf_counter()
            try:
                status, data = post_refund(port, keys[code], body)
            except OSError as exc:
                errors[c][f"{type(exc).__name__}: {exc}"[:160]] += 1
                continue
            latencies[c].append(time.perf_counter() - t0)
            if status == 201:
                ok[c] += 1
            else:
                errors[c][f"{status} {data[:160]!r}"] += 1

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    stop_at[0] = t_start + duration
    start.wait()
    # CPU over the middle of the run (ramp-up and tail left out), per request answered.
    time.sleep(min(2.0, duration / 4))
    own = [os.getpid()]
    n0 = sum(len(x) for x in latencies)
    c0, w0, s0 = rc.proc_cpu(own), rc.proc_cpu(cpu_pids), {pid: rc.proc_cpu([pid]) for pid in rc.bench_backends()}
    y0 = rc.proc_cpu(list(relay_pids)) if relay_pids else 0.0
    time.sleep(max(1.0, duration - min(2.0, duration / 4) - 1.5))
    n1 = sum(len(x) for x in latencies)
    c1, w1 = rc.proc_cpu(own), rc.proc_cpu(cpu_pids)
    y1 = rc.proc_cpu(list(relay_pids)) if relay_pids else 0.0
    # A web worker reconnects after DB_CONN_MAX_AGE seconds: a backend that started in the window
    # counts whole, one that ended in it is lost (a slight underestimate).
    s1 = sum(rc.proc_cpu([pid]) - s0.get(pid, 0.0) for pid in rc.bench_backends())
    s0 = 0.0
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    lat = sorted(x for xs in latencies for x in xs)
    n = max(n1 - n0, 1)
    err = sum(errors, Counter())
    landed = rc.sql("SELECT count(*) FROM refunds_refund WHERE out_refund_no LIKE %s", [f"{prefix}-{run_id}-%"])[0][0]
    if landed != sum(ok):
        err[f"count mismatch: {sum(ok)} answered 201, database holds {landed}"] += 1
    return {
        "rate": sum(ok) / elapsed, "n": sum(ok), "errors": err,
        "p50": 1000 * lat[len(lat) // 2] if lat else 0.0,
        "p99": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        "client_ms": 1000 * (c1 - c0) / n, "web_ms": 1000 * (w1 - w0) / n, "relay_ms": 1000 * (y1 - y0) / n,
        # With DB_CONN_MAX_AGE=0 every request has a backend of its own, gone before it can be read.
        "server_ms": 1000 * (s1 - s0) / n if pg_cpu else float("nan"),
    }


def warm_up(server: Server, keys: dict, prefix: str) -> None:
    """Each sync worker loads the URLconf and connects on its first request: not measured."""
    from concurrent.futures import ThreadPoolExecutor

    code, key = next(iter(keys.items()))
    bodies = [{"out_trade_no": seed.out_trade_no(i), "out_refund_no": f"{prefix}-warm-{time.time_ns()}-{i}",
               "amount": 100} for i in range(server.workers * WARMUP_PER_WORKER)]
    with ThreadPoolExecutor(server.workers * 2) as pool:
        statuses = Counter(s for s, _ in pool.map(lambda b: post_refund(server.port, key, b), bodies))
    if set(statuses) != {201}:
        raise RuntimeError(f"warm-up of {server.name} answered {dict(statuses)}; see {server.log.name}")


# ---------------------------------------------------------------------------------------------
# Setup


def create_keys(codes: list[str]) -> dict[str, str]:
    """One `refunds` API key per merchant (raw keys are shown once: made afresh every run)."""
    from merchants.models import ApiKey, Merchant
    from merchants.services import api_key_create

    keys = {}
    for m in Merchant.objects.filter(code__in=codes).order_by("code"):
        _, raw = api_key_create(merchant=m, scope=ApiKey.Scope.REFUNDS, name="bench api_load")
        keys[m.code] = raw
    return keys


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def profile(n: int, n_merchants: int, redis_url: str) -> None:
    """One process, no HTTP server, no contention: the WSGI application called directly (all
    middleware, DRF, the service). Prints ms per request (wall,
    CPU, queries and time inside cursor.execute) and a cProfile of the CPU time."""
    import io
    from wsgiref.util import setup_testing_defaults

    os.environ.update({"CELERY_BROKER_URL": redis_url, "API_RATE_LIMIT": str(10**9), "DB_CONN_MAX_AGE": "60",
                       "BENCH_CELERY_BROKER_URL": redis_url})
    seed.setup_django()
    from config.wsgi import application

    codes = [code for _, code in rc.shape_merchants("spread", n_merchants)]
    keys = create_keys(codes)
    n_payments = rc.payments_per_merchant()
    rnd = random.Random(11)
    tag = time.time_ns()

    def loop(count, prefix):
        for i in range(count):
            code = rnd.choice(codes)
            body = json.dumps({"out_trade_no": seed.out_trade_no(rnd.randrange(n_payments)),
                               "out_refund_no": f"{prefix}-{tag}-{i}", "amount": 100}).encode()
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/refunds", "CONTENT_TYPE": "application/json",
                       "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": f"Bearer {keys[code]}",
                       "SERVER_NAME": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(body)}
            setup_testing_defaults(environ)
            status: list[str] = []
            b"".join(application(environ, lambda s, h, *a, out=status: out.append(s)))
            if not status[0].startswith("201"):
                raise RuntimeError(status[0])

    flush_redis(redis_url)
    loop(50, "apw")
    rc.prepare_run()
    print(f"\nOne process, {n} requests, no profiler: {rc.measure_plain(loop, n, 'request', 'apn')}")
    rc.print_cprofile(loop, n, "request", "app", limits=(("tottime", 30), ("cumulative", 70)))
    flush_redis(redis_url)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    ap.add_argument("--max-requests", type=int, default=0, help="stop a measurement after this many requests (0: time only)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers")
    ap.add_argument("--conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE of the web workers")
    ap.add_argument("--merchants", type=int, default=64)
    ap.add_argument("--payments", type=int, default=1024, help="payments per merchant (seeded)")
    ap.add_argument("--shapes", default="spread,one")
    ap.add_argument("--no-raw", action="store_true", help="skip the pgbench ceiling")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="broker for the dispatch messages; FLUSHED")
    ap.add_argument("--baseline-dir", type=Path, help="also serve and measure the code in this directory (api-before)")
    ap.add_argument("--baseline-conn-max-age", type=int, help="DB_CONN_MAX_AGE of the baseline (default: --conn-max-age)")
    ap.add_argument("--also-conn0", action="store_true",
                    help="also measure this code with DB_CONN_MAX_AGE=0 (api-conn0): a connection per request")
    ap.add_argument("--with-relay", action="store_true",
                    help="also run the dispatch relay (beat's job, every second) on the same CPUs, publishing to --redis")
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--profile", type=int, metavar="N", help="profile N requests in one process instead (needs a seeded database)")
    args = ap.parse_args(argv)
    if not args.redis.startswith("redis://127.0.0.1"):
        sys.exit("--redis must be a local Redis (redis://127.0.0.1...)")
    if args.profile:
        profile(args.profile, args.merchants, args.redis)
        return

    if not args.no_seed:
        seed.run(args.merchants, args.payments)
    else:
        seed.setup_django()
    n_payments = rc.payments_per_merchant()
    shapes = args.shapes.split(",")
    by_shape = {shape: rc.shape_merchants(shape, args.merchants) for shape in shapes}
    keys = create_keys([code for rows in by_shape.values() for _, code in rows])
    from django.db import connection

    connection.close()

    log_dir = ROOT / "var" / "bench_api_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DEBUG")},
        "DATABASE_URL": seed.DATABASE_URL, "CELERY_BROKER_URL": args.redis, "DJANGO_SETTINGS_MODULE": "config.settings",
        "API_RATE_LIMIT": str(10**9),  # counted, never refused
        "DB_CONN_MAX_AGE": str(args.conn_max_age), "LOG_LEVEL": "WARNING",
    }
    contenders = (["api"] + (["api-conn0"] if args.also_conn0 else []) + (["api-before"] if args.baseline_dir else [])
                  + ([] if args.no_raw else ["raw"]))
    servers: dict[str, Server] = {}
    results: dict[tuple[str, str], list[dict]] = {}
    relay = None
    flush_redis(args.redis)
    try:
        if args.with_relay:
            relay = Relay(env, log_dir)
            relay.drain()
        servers["api"] = Server("api", ROOT, free_port(), args.web_workers, env, log_dir)
        if args.also_conn0:
            servers["api-conn0"] = Server("api-conn0", ROOT, free_port(), args.web_workers,
                                          {**env, "DB_CONN_MAX_AGE": "0"}, log_dir)
        if args.baseline_dir:
            base_env = {**env, "DB_CONN_MAX_AGE": str(args.baseline_conn_max_age if args.baseline_conn_max_age is not None
                                                      else args.conn_max_age)}
            servers["api-before"] = Server("api-before", args.baseline_dir.resolve(), free_port(), args.web_workers,
                                           base_env, log_dir)
        for name, server in servers.items():
            warm_up(server, keys, rc.PREFIX[name])
        for run in range(1, args.runs + 1):
            for shape in shapes:
                rows = by_shape[shape]
                shape_keys = {code: keys[code] for _, code in rows}
                for kind in contenders:
                    rc.prepare_run()
                    flush_redis(args.redis)
                    bg = rc.background_busy()
                    run_id = int(time.time())
                    if kind == "raw":
                        if relay:
                            relay.pause()  # the ceiling is the transaction alone
                        r = rc.run_pgbench("raw", rows[0][0], len(rows), n_payments, args.clients, 2, args.duration, run_id)
                        if relay:
                            relay.skip_legs_of(f"{rc.PREFIX['raw']}-{run_id}-%")
                            relay.resume()
                        r.update(web_ms=0.0, relay_ms=0.0, p50=float("nan"), p99=float("nan"))
                    else:
                        server = servers[kind]
                        r = load(port=server.port, keys=shape_keys, prefix=rc.PREFIX[kind], run_id=run_id,
                                 clients=args.clients, n_payments=n_payments, duration=args.duration,
                                 max_requests=args.max_requests, cpu_pids=server.worker_pids(),
                                 pg_cpu=server.env["DB_CONN_MAX_AGE"] != "0",
                                 relay_pids=[relay.proc.pid] if relay else ())
                    r["bg"] = bg
                    results.setdefault((shape, kind), []).append(r)
                    relay_text = f" relay {r['relay_ms']:.2f}" if relay else ""
                    errs = "" if not r["errors"] else "  ERRORS: " + "; ".join(
                        f"{n} x {e}" for e, n in r["errors"].most_common(3))
                    print(f"run {run} {shape:<6} {kind:<10} {r['rate']:8.1f}/s  p50 {r['p50']:6.1f} ms  "
                          f"p99 {r['p99']:6.1f} ms  cpu/req client {r['client_ms']:.1f} web {r['web_ms']:.1f} "
                          f"pg {r['server_ms']:.1f}{relay_text} ms  (others' load before: {bg:.0f}%){errs}", flush=True)
    finally:
        for server in servers.values():
            server.close()
        if relay is not None:
            relay.close()
        flush_redis(args.redis)
    problems = rc.check_consistency()
    report(args, shapes, contenders, results, problems)


def report(args, shapes, contenders, results, problems) -> None:
    med = {k: {f: statistics.median(r[f] for r in rs)
               for f in ("rate", "p50", "p99", "client_ms", "web_ms", "server_ms", "relay_ms")}
           for k, rs in results.items()}
    label = {"spread": f"spread ({args.merchants} merchants)", "one": "one merchant"}
    print(f"\nPOST /api/v1/refunds, {args.clients} clients, gunicorn -w {args.web_workers} (sync), "
          f"DB_CONN_MAX_AGE={args.conn_max_age}, {args.duration}s x {args.runs} runs (median), {seed.DB_NAME}, "
          f"{os.cpu_count()} CPUs shared by clients, web workers and PostgreSQL")
    cpu_head = "CPU ms/req client+web+pg" + ("+relay" if args.with_relay else "")
    head = f"{'shape':<22}{'contender':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'/raw':>7}{'/spread':>9}" \
           f"{cpu_head:>34}"
    print(head)
    print("-" * len(head))
    for shape in shapes:
        for kind in contenders:
            m = med[(shape, kind)]
            raw = med.get((shape, "raw"), {}).get("rate")
            spread = med.get(("spread", kind), {}).get("rate")
            cpu = f"{m['client_ms']:.1f} + {m['web_ms']:.1f} + {m['server_ms']:.1f}"
            if args.with_relay and kind != "raw":
                cpu += f" + {m['relay_ms']:.2f}"
            print(f"{label[shape]:<22}{kind:<12}{m['rate']:>9.1f}{m['p50']:>9.1f}{m['p99']:>9.1f}"
                  f"{(m['rate'] / raw if raw else float('nan')):>7.2f}{(m['rate'] / spread if spread else float('nan')):>9.2f}"
                  f"{cpu:>34}")
    bgs = [r["bg"] for rs in results.values() for r in rs]
    print(f"\nCPU busy with other work just before the runs: median {statistics.median(bgs):.0f}% "
          f"(min {min(bgs):.0f}%, max {max(bgs):.0f}%); load average now {os.getloadavg()[0]:.1f}")
    n_err = sum(sum(r["errors"].values()) for rs in results.values() for r in rs)
    print(f"errors: {n_err}" + ("" if not n_err else " (see the per-run lines above)"))
    print("ledger and payment totals consistent" if not problems else "INCONSISTENT: " + "; ".join(problems))


if __name__ == "__main__":
    main()
