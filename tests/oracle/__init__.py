"""An independent oracle of the trade-criteria contract (``/work/shared/CRITERIA.md``) and its test against the
engine."""
