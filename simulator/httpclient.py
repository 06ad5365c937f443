"""HTTP clients the simulator and its tools make (partner fetches, the control-API client,
contract checks): never through an environment proxy, sharing one verifying SSL context."""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client (building one costs ~30 ms of CPU)."""
    return ssl.create_default_context()


def client(**kwargs: Any) -> httpx.Client:
    """A fresh httpx client (its own cookie jar) that ignores proxy settings of the environment."""
    import httpx  # here, not at import: the server imports this module and rarely calls out

    kwargs.setdefault("verify", ssl_context())
    return httpx.Client(trust_env=False, **kwargs)
