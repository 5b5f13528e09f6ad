"""History is append-only: the database itself refuses to UPDATE a row (and, on PostgreSQL, to DELETE one).

DELETE is left to SQLite because Django's test-database flush deletes rows there (PostgreSQL truncates).
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION positions_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'positions_history is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER positions_history_append_only BEFORE UPDATE OR DELETE ON positions_history
    FOR EACH ROW EXECUTE FUNCTION positions_history_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS positions_history_append_only ON positions_history;
DROP FUNCTION IF EXISTS positions_history_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER positions_history_append_only BEFORE UPDATE ON positions_history
BEGIN SELECT RAISE(ABORT, 'positions_history is append-only: UPDATE refused'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS positions_history_append_only;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("positions", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
