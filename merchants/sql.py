"""Plain SQL for the statements of the busiest request, `POST /api/v1/refunds`.

Why not the ORM there: building a statement through Django's query compiler costs 0.3-0.5 ms of
CPU, about 15 times the cost of sending it, and a refund sends sixteen. These helpers write the
same portable SQL (PostgreSQL and SQLite) from the models' own metadata, build each statement
once per process, and turn rows into model instances with the fields' own converters. What they
skip is the ORM's per-call machinery, nothing of the models: defaults, `auto_now_add`, JSON and
UUID adaptation all go through the fields. Signals are not sent: a caller that needs one (a new
refund's `post_save`) sends it itself.
"""

from functools import cache

from django.db import connection
from django.db.models import AutoField, Field, Model


def qn(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return qn(model._meta.db_table)


@cache
def _fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(model._meta.concrete_fields)


def columns(model: type[Model], alias: str = "") -> str:
    """Every column of the model, in field order: what `instances` expects at the row's start."""
    return _columns(model, alias)


@cache
def _columns(model, alias):
    prefix = f"{qn(alias)}." if alias else ""
    return ", ".join(prefix + qn(f.column) for f in _fields(model))


@cache
def _converters(model: type[Model], vendor: str):
    found = []
    for i, field in enumerate(_fields(model)):
        col = field.get_col(model._meta.db_table)
        convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if convs:
            found.append((i, convs, col))
    return found


def instance(model: type[Model], row) -> Model:
    """A model instance from a row that starts with `columns(model)`, as if loaded by the ORM."""
    n = len(_fields(model))
    values = list(row[:n])
    for i, convs, col in _converters(model, connection.vendor):
        value = values[i]
        for convert in convs:
            value = convert(value, col, connection)
        values[i] = value
    return model.from_db(connection.alias, None, values)


def _cursor():
    """On PostgreSQL, a cursor that binds parameters on the server: psycopg then prepares each of
    these statements once per connection (after `prepare_threshold`, 5, runs of it) and
    PostgreSQL stops parsing and planning it on every request. Django's own cursors bind on the
    client, which cannot be prepared. Still Django's cursor wrapper: query logging, the
    transaction checks and the error translation all apply."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(ServerBindingCursor(connection.connection))


def fetch(model: type[Model], sql: str, params=()) -> list[tuple[Model, tuple]]:
    """Run a SELECT whose rows start with `columns(model)`: (instance, the row's other values)."""
    n = len(_fields(model))
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return [(instance(model, row), tuple(row[n:])) for row in cursor.fetchall()]


def execute(sql: str, params=()) -> int:
    """Run a statement; returns the number of rows it changed."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@cache
def _insert_sql(model: type[Model], rows: int, vendor: str, on_conflict_do_nothing: bool):
    pk = model._meta.pk
    auto_pk = isinstance(pk, AutoField)
    fields = [f for f in _fields(model) if not (auto_pk and f is pk)]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {table(model)} ({', '.join(qn(f.column) for f in fields)}) "
           f"VALUES {', '.join([row] * rows)}")
    if on_conflict_do_nothing:
        sql += " ON CONFLICT DO NOTHING"
    if auto_pk:
        sql += f" RETURNING {qn(pk.column)}"
    return sql, fields, auto_pk


def insert(objs: list[Model], *, on_conflict_do_nothing: bool = False) -> int:
    """INSERT the instances (one model) in one statement, setting auto primary keys and
    `auto_now_add` values on them. Returns how many rows were inserted (fewer than given only
    with `on_conflict_do_nothing`, where a conflicting row is skipped)."""
    if not objs:
        return 0
    model = type(objs[0])
    sql, fields, auto_pk = _insert_sql(model, len(objs), connection.vendor, on_conflict_do_nothing)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    with _cursor() as cursor:
        cursor.execute(sql, params)
        if auto_pk:
            # One row back per inserted row, in VALUES order (what bulk_create relies on too).
            returned = cursor.fetchall()
            if len(returned) != len(objs):
                raise ValueError("an auto primary key cannot be matched to rows skipped on conflict")
            for obj, (pk,) in zip(objs, returned, strict=True):
                obj.pk = pk
            inserted = len(returned)
        else:
            inserted = cursor.rowcount
    if inserted:
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias
    return inserted
