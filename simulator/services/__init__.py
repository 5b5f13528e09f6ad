"""The simulator's writes: check a request (:mod:`.requests`), run and save simulations (:mod:`.simulations`),
sweeps (:mod:`.sweeps`), and the slots of runs inside a web request (:mod:`.inline`). Sending work to a worker is
:mod:`simulator.launch`."""
