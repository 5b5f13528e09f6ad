"""The producers of notifications: receivers of :data:`runs.signals.run_finished` (filled in by issue 17's work)."""
