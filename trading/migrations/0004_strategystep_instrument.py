"""Claims per strategy, step, day AND instrument (issue 11, items 2 and 3).

A claim before this migration meant "every instrument of the strategy was handled that day": each old row is
expanded into one row per instrument the strategy holds now (the same day, step and run), so nothing that was
done is done again; a strategy without instruments had nothing to handle, and its rows are dropped.
"""

from django.db import migrations, models
import django.db.models.deletion


def expand_claims(apps, schema_editor):  # type: ignore[no-untyped-def]
    StrategyStep = apps.get_model("trading", "StrategyStep")
    Strategy = apps.get_model("trading", "Strategy")
    instruments = {
        strategy.pk: list(strategy.instruments.values_list("pk", flat=True)) for strategy in Strategy.objects.all()
    }
    for claim in StrategyStep.objects.filter(instrument__isnull=True).order_by("pk"):
        ids = instruments.get(claim.strategy_id, [])
        StrategyStep.objects.bulk_create(
            [
                StrategyStep(
                    strategy_id=claim.strategy_id,
                    step=claim.step,
                    as_of=claim.as_of,
                    run_id=claim.run_id,
                    instrument_id=instrument_id,
                )
                for instrument_id in ids
            ]
        )
        claim.delete()
    _checks_now(schema_editor)


def _checks_now(schema_editor):  # type: ignore[no-untyped-def]
    # PostgreSQL defers foreign-key checks to the commit; the ALTER TABLE that follows in this transaction is
    # refused while they are pending ("pending trigger events"), so run them now.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def collapse_claims(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Back to one row per strategy, step and day: keep the first row of each, without its instrument.
    StrategyStep = apps.get_model("trading", "StrategyStep")
    seen = set()
    for claim in StrategyStep.objects.order_by("pk"):
        key = (claim.strategy_id, claim.step, claim.as_of)
        if key in seen:
            claim.delete()
            continue
        seen.add(key)
        claim.instrument_id = None
        claim.position_id = None
        claim.save(update_fields=["instrument", "position"])
    _checks_now(schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ("instruments", "0002_instrument_candle_source"),
        ("positions", "0006_position_protection_history_kinds"),
        ("trading", "0003_strategy_permissions"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="strategystep",
            name="strategy_step_once_per_day",
        ),
        migrations.AddField(
            model_name="strategystep",
            name="instrument",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="strategy_steps",
                to="instruments.instrument",
            ),
        ),
        migrations.AddField(
            model_name="strategystep",
            name="position",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="step_claims",
                to="positions.position",
            ),
        ),
        migrations.RunPython(expand_claims, collapse_claims),
        migrations.AlterField(
            model_name="strategystep",
            name="instrument",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="strategy_steps",
                to="instruments.instrument",
            ),
        ),
        migrations.AddConstraint(
            model_name="strategystep",
            constraint=models.UniqueConstraint(
                fields=("strategy", "step", "as_of", "instrument"), name="strategy_step_once_per_day_instrument"
            ),
        ),
    ]
