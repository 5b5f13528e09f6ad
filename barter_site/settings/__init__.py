"""Settings for Barter: ``base`` (shared), ``local`` (the embedded default), ``test`` and ``production``.

The environment is read in this package only (see ``base.env``).
"""

import os


def select_settings_module(default: str = "barter_site.settings.local") -> None:
    """Point ``DJANGO_SETTINGS_MODULE`` at ``default`` unless the environment already names a module."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default)
