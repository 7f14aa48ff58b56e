"""Plain SQL for the statements of the busiest request, `POST /api/v1/refunds`.

Why not the ORM there: building a statement through Django's query compiler costs 0.3-0.5 ms of
CPU, about ten times the cost of sending it, and a refund sent seventeen. These helpers write the
same portable SQL (PostgreSQL and SQLite) from the models' own metadata, build each statement
once per process, and turn rows into model instances with the fields' own converters. What they
skip is the ORM's per-call machinery, nothing of the models: defaults, `auto_now_add`, JSON and
UUID adaptation all go through the fields. Signals are not sent: a caller that needs one (a new
refund's `post_save`) sends it itself.
"""

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import AutoField, Field, Model


def qn(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return qn(model._meta.db_table)


@cache
def _fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(model._meta.concrete_fields)


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, in field order: what `instance` expects at the row's start."""
    return _columns(model, alias)


@cache
def _columns(model, alias):
    prefix = f"{qn(alias)}." if alias else ""
    return ", ".join(prefix + qn(f.column) for f in _fields(model))


def _db():
    # `django.db.connection` is a proxy that looks the connection up again on every attribute.
    return connections[DEFAULT_DB_ALIAS]


@cache
def _converters(model: type[Model], vendor: str):
    db = _db()
    found = []
    for i, field in enumerate(_fields(model)):
        col = field.get_col(model._meta.db_table)
        convs = db.ops.get_db_converters(col) + col.get_db_converters(db)
        if convs:
            found.append((i, convs, col))
    return found


def instance(model: type[Model], row, db=None) -> Model:
    """A model instance from a row that starts with `columns(model)`, as if loaded by the ORM."""
    db = db or _db()
    values = list(row[:len(_fields(model))])
    for i, convs, col in _converters(model, db.vendor):
        value = values[i]
        for convert in convs:
            value = convert(value, col, db)
        values[i] = value
    return model.from_db(db.alias, None, values)


def _cursor(db):
    """On PostgreSQL, a cursor that binds parameters on the server: psycopg then prepares each of
    these statements once per connection (after `prepare_threshold`, 5, runs of it) and
    PostgreSQL stops parsing and planning it on every request. Django's own cursors bind on the
    client, which cannot be prepared. Still Django's cursor wrapper: query logging, the
    transaction checks and the error translation all apply."""
    if db.vendor != "postgresql":
        return db.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(ServerBindingCursor(db.connection))


def fetch(model: type[Model], sql: str, params=()) -> list[tuple[Model, tuple]]:
    """Run a SELECT whose rows start with `columns(model)`: (instance, the row's other values)."""
    db = _db()
    n = len(_fields(model))
    with _cursor(db) as cursor:
        cursor.execute(sql, params)
        return [(instance(model, row, db), tuple(row[n:])) for row in cursor.fetchall()]


def execute(sql: str, params=()) -> int:
    """Run a statement; returns the number of rows it changed."""
    with _cursor(_db()) as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@cache
def _insert_sql(model: type[Model], rows: int, vendor: str):
    pk = model._meta.pk
    auto_pk = isinstance(pk, AutoField)
    fields = [f for f in _fields(model) if not (auto_pk and f is pk)]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {table(model)} ({', '.join(qn(f.column) for f in fields)}) "
           f"VALUES {', '.join([row] * rows)}")
    if auto_pk:
        sql += f" RETURNING {qn(pk.column)}"
    return sql, fields, auto_pk


def insert(objs: list[Model]) -> None:
    """INSERT the instances (one model) in one statement, setting auto primary keys and
    `auto_now_add` values on them."""
    if not objs:
        return
    db = _db()
    model = type(objs[0])
    sql, fields, auto_pk = _insert_sql(model, len(objs), db.vendor)
    params = [f.get_db_prep_save(f.pre_save(obj, True), db) for obj in objs for f in fields]
    with _cursor(db) as cursor:
        cursor.execute(sql, params)
        if auto_pk:
            # One row back per inserted row, in VALUES order (what bulk_create relies on too).
            for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = pk
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias
