"""The simulator form's criteria builder: its fields and conversions (:mod:`.conversions`) and its rows both
ways (:mod:`.rows`)."""
