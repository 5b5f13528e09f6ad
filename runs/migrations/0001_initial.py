"""History and RunHeartbeat, moved from the positions app with their tables (state only)."""

import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from barter_site.model_moves import content_types_moved


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('instruments', '0002_instrument_candle_source'),
        ('positions', '0008_order_strategystep_from_trading_history_to_runs'),
        ('trading', '0006_order_strategystep_to_positions'),
    ]

    # State only: the tables positions_history (with its append-only trigger) and positions_runheartbeat were
    # made by the positions app's migrations and stay as they are (db_table). Then the content types of History
    # and RunHeartbeat are renamed to runs, so runs.view_history is the permission users held as
    # positions.view_history.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='RunHeartbeat',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('run_id', models.UUIDField(help_text='The run (History.run_id).', unique=True)),
                        ('step', models.CharField(choices=[('collect', 'collect (sync_data)'), ('open', 'open (sync_new_trades)'), ('close', 'close (sync_close_positions)'), ('import', 'import (import_ohlc)')], max_length=16)),
                        ('lock', models.CharField(blank=True, help_text='The run lock key, when the run holds one.', max_length=300)),
                        ('started_at', models.DateTimeField()),
                        ('beat_at', models.DateTimeField(db_index=True, help_text='The last beat (aware UTC).')),
                        ('pid', models.PositiveIntegerField(help_text='The process running it.')),
                        ('host', models.CharField(blank=True, help_text='The machine running it.', max_length=255)),
                    ],
                    options={
                        'db_table': 'positions_runheartbeat',
                    },
                ),
                migrations.CreateModel(
                    name='History',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('run_id', models.UUIDField(db_index=True, help_text='Groups the rows of one run of a step.')),
                        ('step', models.CharField(choices=[('collect', 'collect (sync_data)'), ('open', 'open (sync_new_trades)'), ('close', 'close (sync_close_positions)'), ('import', 'import (import_ohlc)')], max_length=16)),
                        ('kind', models.CharField(choices=[('run_started', 'Run Started'), ('run_finished', 'Run Finished'), ('candles_synced', 'Candles Synced'), ('candles_imported', 'Candles Imported'), ('signal', 'Signal'), ('order', 'Order'), ('fill', 'Fill'), ('position_opened', 'Position Opened'), ('position_closed', 'Position Closed'), ('order_canceled', 'Order Canceled'), ('order_rejected', 'Order Rejected'), ('entry_refused', 'Entry Refused'), ('reconciled', 'Reconciled'), ('error', 'Error')], max_length=32)),
                        ('status', models.CharField(blank=True, choices=[('ok', 'Ok'), ('partial', 'Partial'), ('failed', 'Failed'), ('interrupted', 'Interrupted')], help_text='Set on run_finished.', max_length=16)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('message', models.TextField(blank=True)),
                        ('payload', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                        ('instrument', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='instruments.instrument')),
                        ('position', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='positions.position')),
                        ('strategy', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='trading.strategy')),
                    ],
                    options={
                        'verbose_name_plural': 'history',
                        'db_table': 'positions_history',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['step', 'kind', '-created_at'], name='history_step_kind_time')],
                    },
                ),
            ],
        ),
        content_types_moved(("positions", "runs", "history"), ("positions", "runs", "runheartbeat")),
    ]
