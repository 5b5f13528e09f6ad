"""How orders are filled: base (ExecutionBackend, Quote), paper (paper and replay brokers, the paper path),
exchange (ccxt), order_state, orders (send, then take up the fill), fills, protection (stop-losses), trades (entries
and exits of exchange strategies), reconcile, backends (which backend a strategy names)."""
