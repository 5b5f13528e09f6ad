#!/usr/bin/env python
"""Django's command-line utility for Barter."""

import sys


def main() -> None:
    """Run administrative tasks with the local settings unless DJANGO_SETTINGS_MODULE says otherwise."""
    from barter_site.settings import select_settings_module

    select_settings_module()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
