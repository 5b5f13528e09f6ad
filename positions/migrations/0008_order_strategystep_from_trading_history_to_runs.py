"""Order and StrategyStep come from the trading app, History and RunHeartbeat go to the runs app: state only,
every table and row stays."""

import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models

from barter_site.model_moves import content_types_moved


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('instruments', '0002_instrument_candle_source'),
        ('positions', '0007_runheartbeat'),
        ('trading', '0006_order_strategystep_to_positions'),
    ]

    # State only: Order and StrategyStep keep their tables (trading_order, trading_strategystep: db_table), and
    # History and RunHeartbeat keep theirs in the runs app (runs.0001_initial). Then the content types of Order and
    # StrategyStep are renamed to positions, so their permissions, grants and admin log entries follow.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Order',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('as_of', models.DateField(help_text='The day of the run that decided the order.')),
                        ('side', models.CharField(choices=[('buy', 'Buy'), ('sell', 'Sell')], max_length=4)),
                        ('type', models.CharField(choices=[('market', 'Market'), ('stop_loss', 'stop-loss (market when triggered)')], default='market', max_length=16)),
                        ('purpose', models.CharField(choices=[('entry', 'Entry'), ('exit', 'Exit'), ('protection', 'protection (stop-loss on the exchange)')], max_length=16)),
                        ('quantity', models.DecimalField(decimal_places=18, max_digits=38)),
                        ('price', models.DecimalField(blank=True, decimal_places=18, help_text='Trigger price of a stop-loss; for a market order the price it was sized at.', max_digits=38, null=True)),
                        ('status', models.CharField(choices=[('new', 'new (not confirmed by the exchange)'), ('open', 'Open'), ('partially_filled', 'Partially Filled'), ('filled', 'Filled'), ('canceled', 'Canceled'), ('rejected', 'Rejected'), ('expired', 'Expired')], default='new', max_length=16)),
                        ('exchange_id', models.CharField(max_length=32)),
                        ('market_symbol', models.CharField(help_text='ccxt unified symbol, e.g. BTC/USDT.', max_length=41)),
                        ('exchange_order_id', models.CharField(blank=True, max_length=64)),
                        ('client_order_id', models.CharField(max_length=36, unique=True)),
                        ('filled_quantity', models.DecimalField(decimal_places=18, default=Decimal('0'), max_digits=38)),
                        ('average_price', models.DecimalField(blank=True, decimal_places=18, max_digits=38, null=True)),
                        ('fee', models.DecimalField(decimal_places=18, default=Decimal('0'), max_digits=38)),
                        ('fee_currency', models.CharField(blank=True, max_length=16)),
                        ('other_fees', models.JSONField(blank=True, default=dict, help_text='Fees paid in a third currency (e.g. BNB), by currency: not in fee, entry/exit fees or pnl.')),
                        ('filled_at', models.DateTimeField(blank=True, help_text='When the last fill happened (aware UTC).', null=True)),
                        ('exit_reason', models.CharField(blank=True, help_text="Of an exit order: the engine's exit reason it executes.", max_length=16)),
                        ('error', models.TextField(blank=True, help_text='Why the exchange rejected it, or why it was given up.')),
                        ('raw', models.JSONField(blank=True, default=dict, help_text="The exchange's last answer (no secrets).")),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='instruments.instrument')),
                        ('position', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='positions.position')),
                        ('strategy', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='orders', to='trading.strategy')),
                    ],
                    options={
                        'db_table': 'trading_order',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='StrategyStep',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('step', models.CharField(choices=[('open', 'open (sync_new_trades)'), ('close', 'close (sync_close_positions)')], max_length=8)),
                        ('as_of', models.DateField()),
                        ('run_id', models.UUIDField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='strategy_steps', to='instruments.instrument')),
                        ('position', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='step_claims', to='positions.position')),
                        ('strategy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='steps', to='trading.strategy')),
                    ],
                    options={
                        'db_table': 'trading_strategystep',
                    },
                ),
                migrations.RemoveField(
                    model_name='history',
                    name='instrument',
                ),
                migrations.RemoveField(
                    model_name='history',
                    name='position',
                ),
                migrations.RemoveField(
                    model_name='history',
                    name='strategy',
                ),
                migrations.DeleteModel(
                    name='RunHeartbeat',
                ),
                migrations.DeleteModel(
                    name='History',
                ),
                migrations.AddIndex(
                    model_name='order',
                    index=models.Index(fields=['strategy', 'status'], name='order_strategy_status'),
                ),
                migrations.AddConstraint(
                    model_name='order',
                    constraint=models.CheckConstraint(condition=models.Q(('quantity__gt', 0)), name='order_quantity_positive'),
                ),
                migrations.AddConstraint(
                    model_name='order',
                    constraint=models.CheckConstraint(condition=models.Q(('filled_quantity__gte', 0), ('filled_quantity__lte', models.F('quantity'))), name='order_filled_within_quantity'),
                ),
                migrations.AddConstraint(
                    model_name='order',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('type', 'stop_loss'), _negated=True), ('price__isnull', False), _connector='OR'), name='order_stop_loss_has_price'),
                ),
                migrations.AddConstraint(
                    model_name='order',
                    constraint=models.UniqueConstraint(condition=models.Q(('purpose', 'protection'), ('status__in', ['new', 'open', 'partially_filled'])), fields=('position',), name='order_one_live_protection_per_position'),
                ),
                migrations.AddConstraint(
                    model_name='strategystep',
                    constraint=models.UniqueConstraint(fields=('strategy', 'step', 'as_of', 'instrument'), name='strategy_step_once_per_day_instrument'),
                ),
            ],
        ),
        content_types_moved(("trading", "positions", "order"), ("trading", "positions", "strategystep")),
    ]
