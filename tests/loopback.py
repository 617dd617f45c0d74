"""One HTTP client for the tests' requests to the servers they start on loopback."""

from __future__ import annotations

import httpx

# httpx.get / post / stream build a client for each call, and with it an SSL context that reads the CA bundle: about
# 25 ms of CPU a request, tens of seconds over the suite. This client is built once. Without keep-alive each request
# opens its own connection, as those functions do, so a server stopped between tests leaves no pooled connection.
loopback_http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=httpx.Timeout(5.0))
