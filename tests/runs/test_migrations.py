"""The model moves keep every row: History and RunHeartbeat (positions -> runs), StrategyStep and Order
(trading -> positions) change app, never table.

A database migrated by the last migrations of the layout before the moves is filled with rows in every moved
table (and the positions, strategies and instruments they point at), migrated to today's leaf migrations, and
every row of every one of those tables is compared, all columns, read with plain SQL before and after; then read
again through the moved models of the new state, and migrated back. The content types follow the models, so a
permission granted as ``positions.view_history`` is ``runs.view_history`` afterwards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django_test_migrations.migrator import Migrator

#: The leaf migrations of every app of ours before the moves (the main branch before the runs app).
BEFORE: list[tuple[str, str | None]] = [
    ("admin", "0003_logentry_add_action_flag_choices"),  # Django's, for the log entries of moved models
    ("barter_site", "0001_knox_tokens_from_drf"),
    ("instruments", "0002_instrument_candle_source"),
    ("positions", "0007_runheartbeat"),
    ("simulator", "0002_heartbeat"),
    ("trading", "0005_order_other_fees"),
]
#: The migrations that move the models.
MOVES = [
    ("trading", "0006_order_strategystep_to_positions"),
    ("positions", "0008_order_strategystep_from_trading_history_to_runs"),
    ("runs", "0001_initial"),
]
#: The leaf migrations after them.
AFTER: list[tuple[str, str | None]] = [
    ("admin", "0003_logentry_add_action_flag_choices"),
    ("barter_site", "0001_knox_tokens_from_drf"),
    ("instruments", "0002_instrument_candle_source"),
    ("positions", "0008_order_strategystep_from_trading_history_to_runs"),
    ("runs", "0001_initial"),
    ("simulator", "0002_heartbeat"),
    ("trading", "0006_order_strategystep_to_positions"),
]
#: Every table a moved model lives in, and every table they point at.
TABLES = [
    "positions_history",
    "positions_runheartbeat",
    "trading_strategystep",
    "trading_order",
    "positions_position",
    "trading_strategy",
    "trading_strategy_instruments",
    "instruments_instrument",
]
#: (app before, app after, model) of each moved model.
MOVED = [
    ("positions", "runs", "History", "positions_history"),
    ("positions", "runs", "RunHeartbeat", "positions_runheartbeat"),
    ("trading", "positions", "StrategyStep", "trading_strategystep"),
    ("trading", "positions", "Order", "trading_order"),
]

pytestmark = pytest.mark.django_db(transaction=True)


def table_rows(table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Every row of ``table`` by id, all columns, as the database driver reads them (no model involved)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)} ORDER BY id")  # noqa: S608 - our names
        columns = [column[0] for column in cursor.description]
        return columns, list(cursor.fetchall())


def snapshot() -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    return {table: table_rows(table) for table in TABLES}


def model_rows(model: Any) -> list[dict[str, Any]]:
    """Every row of a (historical) model by id, every concrete field by its column's attribute name."""
    return list(model.objects.order_by("id").values(*[f.attname for f in model._meta.concrete_fields]))


def applied() -> set[tuple[str, str]]:
    return set(MigrationRecorder(connection).applied_migrations())


def populate(apps: Any) -> dict[str, Any]:
    """Rows in every moved table through the models of the state before the moves; returns what the checks use."""
    Instrument = apps.get_model("instruments", "Instrument")
    Strategy = apps.get_model("trading", "Strategy")
    Position = apps.get_model("positions", "Position")
    StrategyStep = apps.get_model("trading", "StrategyStep")
    Order = apps.get_model("trading", "Order")
    History = apps.get_model("positions", "History")
    RunHeartbeat = apps.get_model("positions", "RunHeartbeat")

    btc = Instrument.objects.create(coingecko_id="bitcoin", symbol="BTC", name="Bitcoin")
    eth = Instrument.objects.create(
        coingecko_id="ethereum",
        symbol="ETH",
        name="Ethereum",
        candle_source="exchange",
        exchange_id="binance",
        market_symbol="ETH/USDT",
    )
    paper = Strategy.objects.create(name="paper sma", criteria={"version": 1}, starting_cash=Decimal("10000"))
    live = Strategy.objects.create(
        name="live",
        criteria={"version": 1},
        execution_backend="exchange",
        exchange_id="binance",
        is_enabled=True,
    )
    paper.instruments.set([btc, eth])
    live.instruments.set([eth])
    entry_at = datetime(2024, 1, 10, 0, 5, tzinfo=UTC)
    held = Position.objects.create(
        strategy=paper,
        instrument=btc,
        quantity=Decimal("0.123456789012345678"),
        entry_price=Decimal("42000.5"),
        entry_at=entry_at,
        entry_fee=Decimal("5.18"),
        stop_loss_price=Decimal("39900"),
        trailing_stop_price=Decimal("40100.25"),
        exits_checked_through=datetime(2024, 1, 11, tzinfo=UTC),
    )
    closed = Position.objects.create(
        strategy=live,
        instrument=eth,
        status="closed",
        quantity=Decimal("2"),
        entry_price=Decimal("2500"),
        entry_at=entry_at,
        entry_fee=Decimal("5"),
        exit_price=Decimal("2600"),
        exit_at=datetime(2024, 1, 12, 0, 5, tzinfo=UTC),
        exit_fee=Decimal("5.2"),
        exit_reason="take_profit",
        take_profit_price=Decimal("2600"),
        protection="protected",
        pnl=Decimal("189.8"),
        pnl_ratio=Decimal("0.0379241516966067864"),
    )
    run = uuid.uuid4()
    StrategyStep.objects.create(
        strategy=paper, step="open", as_of=date(2024, 1, 10), instrument=btc, position=held, run_id=run
    )
    StrategyStep.objects.create(
        strategy=paper, step="open", as_of=date(2024, 1, 10), instrument=eth, run_id=run
    )
    StrategyStep.objects.create(
        strategy=live,
        step="close",
        as_of=date(2024, 1, 12),
        instrument=eth,
        position=closed,
        run_id=uuid.uuid4(),
    )
    Order.objects.create(
        strategy=live,
        instrument=eth,
        position=closed,
        as_of=date(2024, 1, 10),
        side="buy",
        purpose="entry",
        quantity=Decimal("2"),
        price=Decimal("2499.99"),
        status="filled",
        exchange_id="binance",
        market_symbol="ETH/USDT",
        exchange_order_id="8812",
        client_order_id="barter-1-eth-20240110-entry",
        filled_quantity=Decimal("2"),
        average_price=Decimal("2500"),
        fee=Decimal("5"),
        fee_currency="USDT",
        other_fees={"BNB": "0.00031"},
        filled_at=entry_at,
        raw={"id": "8812", "status": "closed"},
    )
    Order.objects.create(
        strategy=live,
        instrument=eth,
        position=closed,
        as_of=date(2024, 1, 12),
        side="sell",
        type="stop_loss",
        purpose="protection",
        quantity=Decimal("2"),
        price=Decimal("2300"),
        status="canceled",
        exchange_id="binance",
        market_symbol="ETH/USDT",
        client_order_id="barter-1-eth-20240110-stop",
        exit_reason="stop_loss",
        error="replaced by the exit",
    )
    started = datetime(2024, 1, 12, 0, 5, tzinfo=UTC)
    History.objects.create(
        run_id=run,
        step="open",
        kind="run_started",
        created_at=started,
        payload={"as_of": "2024-01-10", "lock": "open:2024-01-10:all"},
        message="open started",
    )
    History.objects.create(
        run_id=run,
        step="open",
        kind="position_opened",
        created_at=started,
        instrument=btc,
        strategy=paper,
        position=held,
        message="bought",
        payload={"price": "42000.5"},
    )
    History.objects.create(
        run_id=run,
        step="open",
        kind="error",
        created_at=started,
        instrument=eth,
        strategy=live,
        message="no candle",
    )
    History.objects.create(
        run_id=run,
        step="open",
        kind="run_finished",
        status="partial",
        created_at=started,
        payload={"run_id": str(run), "results": [{"instrument": "bitcoin"}], "errors": []},
    )
    RunHeartbeat.objects.create(
        run_id=uuid.uuid4(),
        step="collect",
        lock="collect:2024-01-12:all",
        started_at=started,
        beat_at=started,
        pid=4242,
        host="worker-1",
    )
    return {"held": held.pk}


def grants(apps: Any) -> dict[str, Any]:
    """Content types of the moved models as the database had them, with a permission granted to a user and a group
    and an admin log entry (the rows ``post_migrate`` and the admin write; muted in this test, so written here)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    Group = apps.get_model("auth", "Group")
    LogEntry = apps.get_model("admin", "LogEntry")
    content_types = {
        model: ContentType.objects.create(app_label=old, model=model.lower()) for old, _, model, _ in MOVED
    }
    view_history = Permission.objects.create(
        content_type=content_types["History"], codename="view_history", name="Can view history"
    )
    view_order = Permission.objects.create(
        content_type=content_types["Order"], codename="view_order", name="Can view order"
    )
    reader = User.objects.create(username="reader")
    reader.user_permissions.set([view_history])
    group = Group.objects.create(name="readers")
    group.permissions.set([view_order])
    LogEntry.objects.create(
        user=reader,
        content_type=content_types["Order"],
        object_id="1",
        object_repr="order",
        action_flag=2,
        action_time=datetime(2024, 1, 12, tzinfo=UTC),
    )
    return {model: ct.pk for model, ct in content_types.items()}


def test_the_model_moves_keep_every_row_and_the_permissions(migrator: Migrator) -> None:
    # A clean database, then exactly the migrations of BEFORE and their dependencies, as the main branch had them
    # (apply_initial_migration(BEFORE) alone would also apply whatever comes before them in the full plan).
    migrator.apply_initial_migration([("contenttypes", "0001_initial")])
    old = migrator.apply_tested_migration(BEFORE)
    assert not set(MOVES) & applied(), "the state before the moves must not include them"
    populate(old.apps)
    content_types = grants(old.apps)
    before = snapshot()
    read_before = {model: model_rows(old.apps.get_model(app, model)) for app, _, model, _ in MOVED}
    assert all(before[table][1] for table in TABLES), "every table must hold rows"

    new = migrator.apply_tested_migration(AFTER)

    assert set(MOVES) <= applied()
    assert snapshot() == before  # every row of every table, all columns, unchanged
    for app_before, app_after, model, table in MOVED:
        with pytest.raises(LookupError):
            new.apps.get_model(app_before, model)
        moved = new.apps.get_model(app_after, model)
        assert moved._meta.db_table == table
        assert sorted(f.column for f in moved._meta.concrete_fields) == sorted(before[table][0])
        assert model_rows(moved) == read_before[model]  # the same rows through the model, values typed
    history = new.apps.get_model("runs", "History")
    held = new.apps.get_model("positions", "Position").objects.get(status="open")
    assert history.objects.get(kind="position_opened").position_id == held.pk
    assert new.apps.get_model("positions", "StrategyStep").objects.filter(position=held).count() == 1
    assert new.apps.get_model("positions", "Order").objects.get(purpose="entry").other_fees == {
        "BNB": "0.00031"
    }

    # The content types were renamed in place: the same rows, so permissions, grants and log entries follow.
    ContentType = new.apps.get_model("contenttypes", "ContentType")
    for _, app_after, model, _ in MOVED:
        assert ContentType.objects.get(pk=content_types[model]).app_label == app_after
    User = new.apps.get_model("auth", "User")
    reader = User.objects.get(username="reader")
    assert [(p.content_type.app_label, p.codename) for p in reader.user_permissions.all()] == [
        ("runs", "view_history")
    ]
    Group = new.apps.get_model("auth", "Group")
    assert [
        (p.content_type.app_label, p.codename) for p in Group.objects.get(name="readers").permissions.all()
    ] == [("positions", "view_order")]
    assert new.apps.get_model("admin", "LogEntry").objects.get().content_type.app_label == "positions"

    # The table is the same, and so is its append-only trigger.
    with pytest.raises(DatabaseError), transaction.atomic():
        history.objects.filter(kind="run_started").update(message="rewritten")

    # And back: the moves undo in state only, the content types return to their apps.
    migrator.apply_tested_migration(BEFORE)
    assert not set(MOVES) & applied()
    assert snapshot() == before
    assert ContentType.objects.get(pk=content_types["History"]).app_label == "positions"
    assert ContentType.objects.get(pk=content_types["Order"]).app_label == "trading"
