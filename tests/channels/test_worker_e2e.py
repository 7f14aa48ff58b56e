"""End to end with REAL Celery workers: Redis carries the messages, PostgreSQL holds the truth.

The test process creates refunds through refunds.services.refund_create and runs the dispatch
relay once, as beat would, which puts `dispatch_leg` on Redis; a `celery worker` subprocess (prefork, -c 2, queues celery + dispatch)
pointed at the pytest-django test database submits to the sandbox channels, whose notifications
come back over HTTP to the live server of this process. Nothing runs in-process but the janitor
and sweep *messages* the test sends, as beat would.

One worker serves the module (starting one costs seconds, more on a busy machine); the kill test
has workers of its own on a Redis database of its own, so the shared worker cannot take its
messages. Needs PostgreSQL (several processes share the test database) and Redis: E2E_REDIS_URL
(default redis://127.0.0.1:6379/5) and E2E_REDIS_URL_KILL (default .../7), database numbers of
their own: they are flushed. Concurrent runs on one machine take turns (a file lock per database).
"""

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from channels.models import ChannelNotification, SandboxPayout
from config import celery_app
from merchants.models import Account, LedgerTransaction
from refunds import dispatch
from refunds.models import Refund, RefundLeg, SubmissionAttempt
from refunds.tasks import dispatch_sweep, unknown_result_janitor
from tests import factories as f
from tests.brokers import use_broker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/5")
KILL_REDIS_URL = os.environ.get("E2E_REDIS_URL_KILL", "redis://127.0.0.1:6379/7")
ROOT = Path(settings.BASE_DIR)
WORKER_READY_TIMEOUT = 60.0  # a busy machine takes long to import Django and fork the pool
OUTCOME_TIMEOUT = 30.0


def wait_for(predicate, timeout=15.0, *, every=None, tick=1.0):
    """Poll `predicate` until true or `timeout`; call `every()` once per `tick` seconds meanwhile."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        if predicate():
            return True
        if every is not None and time.monotonic() >= next_tick:
            every()
            next_tick = time.monotonic() + tick
        time.sleep(0.1)
    return predicate()


def _database_url() -> str:
    s = connection.settings_dict  # at test time NAME is the test database (e.g. test_test)
    auth = quote(s["USER"] or "postgres", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    def __init__(self, env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "celery,dispatch", "-c", "2", "--pool", "prefork",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"e2e-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self) -> None:
        ok = wait_for(lambda: " ready." in self.log() or self.proc.poll() is not None, WORKER_READY_TIMEOUT)
        if not ok or self.proc.poll() is not None:
            self.stop()
            pytest.fail(f"celery worker did not start:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (the main process and its pool children) at once."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self._reap_group()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.kill()
        self._reap_group()
        self._log.close()

    def _reap_group(self) -> None:
        # A pool child left behind (its parent gone) is still in the group: make sure it is not.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def redis_database(url: str):
    """Exclusive use of one Redis database, flushed before and after, this process's Celery app
    sending to it meanwhile. (Never flush it under a running worker: kombu keeps the queue
    bindings in keys there, and messages published without them are dropped.)"""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis at {url}: {exc}")
    lock = open(Path(tempfile.gettempdir()) / f"refund-e2e-{quote(url, safe='')}.lock", "w")  # noqa: SIM115
    try:
        if not wait_for(lambda: _try_lock(lock), 300):
            pytest.fail(f"another run has held {lock.name} for 5 minutes")
        client.flushdb()
        original = use_broker(url)
        try:
            assert celery_app.connection_for_write().as_uri().startswith("redis://")
            yield client
        finally:
            use_broker(original)
            client.flushdb()
            client.close()
    finally:
        lock.close()  # releases the lock


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def worker_env(live_server, redis_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=redis_url,
        PUBLIC_BASE_URL=live_server.url,
        SECRET_KEY=settings.SECRET_KEY,
        SANDBOX_CHANNEL_SECRET=settings.SANDBOX_CHANNEL_SECRET,  # explicit, though it derives from SECRET_KEY
        TIME_ZONE=settings.TIME_ZONE,
        CHANNEL_QUERY_BACKOFF="1,1,1,1",  # the janitor asks after a second, not a minute
        CHANNEL_RESUBMIT_GRACE="2",
        SANDBOX_SUBMIT_DELAY="0",
        DB_CONN_MAX_AGE="0",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def shared_worker(django_db_setup, live_server, tmp_path_factory):
    """The module's worker, on REDIS_URL. The broker is set per test (`worker`)."""
    with redis_database(REDIS_URL):
        worker = Worker(worker_env(live_server, REDIS_URL), tmp_path_factory.mktemp("e2e") / "worker.log")
        try:
            worker.wait_ready()
            yield worker
        finally:
            worker.stop()
            assert worker.proc.poll() is not None, "the worker was left running"


@pytest.fixture
def worker(shared_worker):
    before = use_broker(REDIS_URL)
    yield shared_worker
    use_broker(before)


@pytest.fixture
def start_worker(live_server, tmp_path):
    """Workers of the test's own, on KILL_REDIS_URL, started on demand; every one is stopped at
    teardown (terminate, then kill)."""
    started: list[Worker] = []

    def start(**extra_env) -> Worker:
        w = Worker(worker_env(live_server, KILL_REDIS_URL, **extra_env), tmp_path / f"worker-{len(started)}.log")
        started.append(w)
        w.wait_ready()
        return w

    with redis_database(KILL_REDIS_URL):
        try:
            yield start
        finally:
            for w in started:
                w.stop()
    for w in started:
        assert w.proc.poll() is not None, "a worker was left running"


def refund_through(channel_code, amount, *, paid=10000):
    f.channel(channel_code)
    m = f.merchant()
    p = f.payment(m, amount=paid, parts=[("channel", paid, channel_code)])
    r = f.refund(m, p, amount)  # refund_create: the leg is committed QUEUED, the outbox
    assert r.status == Refund.Status.APPROVED
    assert dispatch.sweep() == 1  # the relay, as beat runs it every second: dispatch_leg goes to Redis
    return m, r, r.legs.get()


def status_of(refund):
    return Refund.objects.get(pk=refund.pk).status


def janitor_and_sweep():
    unknown_result_janitor.delay()
    dispatch_sweep.delay()


def _explain(worker: Worker, refund) -> str:
    r = Refund.objects.get(pk=refund.pk)
    legs = list(RefundLeg.objects.filter(refund=r).values("status", "next_action_at", "check_count"))
    return f"refund {r.status}, legs {legs}\n--- worker log ---\n{worker.log()[-4000:]}"


@pytest.mark.parametrize("code", ["wechat", "alipay", "bank"])
def test_refund_through_each_sandbox_channel_succeeds(worker, code):
    m, r, leg = refund_through(code, 3000)
    assert wait_for(lambda: status_of(r) == Refund.Status.SUCCEEDED, OUTCOME_TIMEOUT), _explain(worker, r)
    leg.refresh_from_db()
    assert leg.channel_refund_id
    assert SandboxPayout.objects.filter(channel_code=code, refund_no=leg.submission_no).count() == 1
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 0
    assert LedgerTransaction.objects.filter(reference=f"refund:{r.pk}", kind=LedgerTransaction.Kind.REFUND_PAID).count() == 1


def test_amount_ending_50_fails_with_account_closed(worker):
    m, r, leg = refund_through("wechat", 3050)
    assert wait_for(lambda: status_of(r) == Refund.Status.FAILED, OUTCOME_TIMEOUT), _explain(worker, r)
    r.refresh_from_db()
    assert r.failure_reason == "ACCOUNT_CLOSED"
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 3050  # the user is still owed it


def test_amount_ending_51_is_found_by_the_janitor_and_submitted_once(worker):
    m, r, leg = refund_through("bank", 3051)
    assert wait_for(lambda: SubmissionAttempt.objects.filter(leg=leg, status="UNKNOWN").exists(), OUTCOME_TIMEOUT), _explain(worker, r)
    assert status_of(r) == Refund.Status.PROCESSING
    assert wait_for(lambda: status_of(r) == Refund.Status.SUCCEEDED, OUTCOME_TIMEOUT, every=unknown_result_janitor.delay), (
        _explain(worker, r)
    )
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1
    assert SandboxPayout.objects.filter(refund_no=leg.submission_no).count() == 1
    assert r.events.filter(actor="channel:query", to_status=Refund.Status.SUCCEEDED).exists()


def test_amount_ending_52_is_notified_three_times_and_booked_once(worker):
    m, r, leg = refund_through("alipay", 3052)
    notices = ChannelNotification.objects.filter(channel_code="alipay", refund_no=leg.submission_no)
    assert wait_for(lambda: notices.count() == 3, OUTCOME_TIMEOUT), _explain(worker, r)
    assert sorted(notices.values_list("status", flat=True)) == ["applied", "duplicate", "duplicate"]
    assert status_of(r) == Refund.Status.SUCCEEDED
    paid = LedgerTransaction.objects.filter(reference=f"refund:{r.pk}", kind=LedgerTransaction.Kind.REFUND_PAID)
    assert paid.count() == 1
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 0


def test_bank_never_pays_twice_when_the_worker_dies_between_submitting_and_recording(start_worker):
    slow = start_worker(SANDBOX_SUBMIT_DELAY=3)  # the sandbox records its payout, then sleeps
    m, r, leg = refund_through("bank", 3000)
    payouts = SandboxPayout.objects.filter(channel_code="bank", refund_no=leg.submission_no)
    assert wait_for(payouts.exists, OUTCOME_TIMEOUT), _explain(slow, r)
    slow.kill()  # mid-call: paid at the bank, nothing recorded on our side
    assert slow.proc.poll() is not None
    leg.refresh_from_db()
    assert leg.status == RefundLeg.Status.PROCESSING
    assert SubmissionAttempt.objects.get(leg=leg).status == SubmissionAttempt.Status.SENDING

    fresh = start_worker()
    assert wait_for(lambda: status_of(r) == Refund.Status.SUCCEEDED, OUTCOME_TIMEOUT, every=janitor_and_sweep), _explain(fresh, r)
    assert payouts.count() == 1
    assert SubmissionAttempt.objects.filter(leg=leg).count() == 1
    assert LedgerTransaction.objects.filter(reference=f"refund:{r.pk}", kind=LedgerTransaction.Kind.REFUND_PAID).count() == 1
    assert f.balance(m, Account.Kind.REFUND_HOLD) == 0
