"""The refund API's hot path in plain SQL (merchants/sql.py): rows read and written by hand must be
exactly what the ORM reads and writes, on SQLite and on PostgreSQL alike."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from merchants import sql
from merchants.models import Account, LedgerTransaction
from refunds import services as svc
from refunds.models import Payment, PaymentPart, Refund, RefundEvent, RefundLeg
from tests import factories as f

pytestmark = pytest.mark.django_db


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_a_row_read_by_hand_equals_the_orm_instance_field_by_field():
    m = f.merchant()
    p = f.payment(m, amount=10000, paid_at=timezone.now() - datetime.timedelta(days=3),
                  expires_at=timezone.now() + datetime.timedelta(days=1))
    Payment.objects.filter(pk=p.pk).update(legacy_amount_yuan=Decimal("100.00"))  # a Decimal column too
    r, _ = svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no="R1", amount=3000, actor="t",
                             reason="broken")

    for model, pk in ((Payment, p.pk), (Refund, r.pk), (RefundLeg, r.legs.get().pk)):
        key = model._meta.pk.get_db_prep_value(pk, connection)  # a UUID is text on SQLite
        [(by_hand, rest)] = sql.fetch(model, f"SELECT {sql.columns(model)} FROM {sql.table(model)} WHERE id = %s", [key])
        assert rest == ()
        assert field_values(by_hand) == field_values(model.objects.get(pk=pk))
        assert by_hand._state.adding is False and by_hand._state.db == "default"
    assert isinstance(field_values(sql.fetch(Refund, f"SELECT {sql.columns(Refund)} FROM {sql.table(Refund)}")[0][0])
                      ["allocation"], dict)  # JSON comes back as JSON, not text


def test_rows_written_by_hand_read_back_through_the_orm_as_written():
    m = f.merchant()
    p = f.payment(m, amount=10000)
    r, _ = svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no="R1", amount=3000, actor="api:t")
    stored = Refund.objects.get(pk=r.pk)
    assert field_values(stored) == field_values(r)  # what the service holds is what was stored
    assert stored.allocation == {str(p.parts.get().pk): 3000}
    assert stored.created_at is not None and stored.created_at == r.created_at  # auto_now_add went through the field
    leg = r.legs.get()  # answered from what was inserted...
    assert field_values(RefundLeg.objects.get(pk=leg.pk)) == field_values(leg)  # ...with the id it got
    events = RefundEvent.objects.filter(refund=r).order_by("id")
    assert [e.kind for e in events] == [RefundEvent.Kind.CREATED, RefundEvent.Kind.RISK]
    assert events[0].data["breakdown"] == {"channel": 3000}
    hold = LedgerTransaction.objects.get(reference=f"refund:{r.pk}")
    assert sorted(hold.entries.values_list("amount", flat=True)) == [-3000, 3000]
    assert PaymentPart.objects.get(payment=p).refunded_amount == 3000


def test_the_answer_needs_no_query_to_read_the_legs_back(django_assert_num_queries):
    m = f.merchant()
    p = f.payment(m, amount=10000)
    r, _ = svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no="R1", amount=3000, actor="t")
    with django_assert_num_queries(0):
        assert [(leg.route, leg.amount) for leg in r.legs.all()] == [("wechat", 3000)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_prepares_the_hot_path_statements_once_they_repeat():
    m = f.merchant()
    payments = [f.payment(m, amount=1000) for _ in range(8)]
    for i, p in enumerate(payments):
        svc.refund_create(merchant=m, out_trade_no=p.out_trade_no, out_refund_no=f"R{i}", amount=100, actor="t")
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("FOR UPDATE OF p" in s for s in prepared), prepared  # the payment's lock query
    assert any(s.startswith(f"UPDATE {sql.table(Account)}") for s in prepared), prepared  # the balances
