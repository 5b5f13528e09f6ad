"""The simulator's pages: the form and its builder fragments (:mod:`.form`), saved runs and sweeps (:mod:`.results`)."""
