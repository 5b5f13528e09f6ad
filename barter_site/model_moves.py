"""Migration help for a model moved from one app to another with its table kept (``Meta.db_table``).

The move itself is ``SeparateDatabaseAndState``: state operations only (delete in the old app, create in the new
one), so no table, row, index or constraint changes. What does change is the model's app label, and with it the
row of ``django_content_type`` that permissions (``auth_permission.content_type``), their grants to users and
groups, and the admin's log entries point at: :func:`content_types_moved` renames that row in place, so a user
who held ``trading.view_order`` holds ``positions.view_order`` afterwards (a permission is its content type plus
its codename, ``view_order``, which does not name the app).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

#: One moved model: (old app label, new app label, model name in lower case).
Move = tuple[str, str, str]


def _rename(apps: Any, schema_editor: Any, moves: list[Move], *, backwards: bool) -> None:
    # apps and schema_editor are Django's historical registry and schema editor (untyped in the stubs' RunPython).
    content_type = apps.get_model("contenttypes", "ContentType")
    rows = content_type.objects.db_manager(schema_editor.connection.alias)
    for old, new, model in moves:
        source, target = (new, old) if backwards else (old, new)
        # A content type already under the target label (made by a migrate that ran the new code's post_migrate
        # first) is left alone: the source row keeps its grants, and manage.py remove_stale_contenttypes lists it.
        if not rows.filter(app_label=target, model=model).exists():
            rows.filter(app_label=source, model=model).update(app_label=target)
    rows.clear_cache()


def content_types_moved(*moves: Move) -> migrations.RunPython:
    """Return the migration operation that renames the content types of ``moves`` to their new app (reversible).

    Args:
        moves: ``(old_app_label, new_app_label, model_name)`` for each moved model, e.g.
            ``("trading", "positions", "order")``.

    A fresh database has no content type rows yet (``post_migrate`` writes them after the last migration), so
    there the operation changes nothing.
    """
    return migrations.RunPython(
        lambda apps, schema_editor: _rename(apps, schema_editor, list(moves), backwards=False),
        lambda apps, schema_editor: _rename(apps, schema_editor, list(moves), backwards=True),
        elidable=False,
    )
