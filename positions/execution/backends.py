"""Which execution backend a strategy's ``execution_backend`` names.

In a module of its own so that the backends never import each other (the old ``brokers`` <-> ``execution``
import cycle): this module imports them all, and none of them imports it.
"""

from __future__ import annotations

from positions.execution.base import ExecutionBackend
from positions.execution.exchange import ExchangeBroker
from positions.execution.paper import PaperBroker, ReplayBroker


def broker_for(backend: str, *, exchange_id: str = "") -> ExecutionBackend:
    """Return the execution backend named by a strategy's ``execution_backend``.

    Args:
        backend: ``paper``, ``replay`` or ``exchange``.
        exchange_id: for ``exchange``: the strategy's exchange account (ccxt id).

    Raises:
        KeyError: ``backend`` names no backend.
    """
    if backend == "exchange":
        return ExchangeBroker(exchange_id)
    backends: dict[str, type[ExecutionBackend]] = {"paper": PaperBroker, "replay": ReplayBroker}
    return backends[backend]()
