"""Order and StrategyStep move to the positions app (state only: their tables and rows stay)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('trading', '0005_order_other_fees'),
    ]

    # State only: the tables trading_order and trading_strategystep stay, now the models of positions
    # (positions.0008_order_strategystep_from_trading_history_to_runs creates them there, db_table kept).
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='strategystep',
                    name='instrument',
                ),
                migrations.RemoveField(
                    model_name='strategystep',
                    name='position',
                ),
                migrations.RemoveField(
                    model_name='strategystep',
                    name='strategy',
                ),
                migrations.DeleteModel(
                    name='Order',
                ),
                migrations.DeleteModel(
                    name='StrategyStep',
                ),
            ],
        ),
    ]
