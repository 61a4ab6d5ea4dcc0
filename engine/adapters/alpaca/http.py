"""sigtrade's retry policy around alpaca-py's REST clients (shared by bars and news).

alpaca-py retries 429 and 504 a fixed 3 times 3 s apart and ignores ``X-RateLimit-Reset``;
:func:`call_with_retries` replaces that with the bounded
:class:`~engine.adapters.alpaca.config.RetryPolicy`: a 429 waits until the server's reset
time (capped), a 5xx or a dropped connection backs off exponentially, 401/403 become a
:class:`~engine.errors.BrokerError` naming the key variables (never their values), and
after ``max_retries`` the call stops with a BrokerError. :func:`retrying` subclasses an
alpaca-py client so that every HTTP request it makes goes through that policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from engine.adapters.alpaca.config import (
    KEY_ID_ENV,
    SECRET_ENV,
    AlpacaConfig,
    RetryPolicy,
    credentials,
)
from engine.errors import BrokerError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses retried under the :class:`RetryPolicy`."""


def _keys_refused(status: int) -> BrokerError:
    return BrokerError(
        f"Alpaca refused the keys (HTTP {status}): check {KEY_ID_ENV} / {SECRET_ENV} "
        "(paper keys for the paper endpoint, and a data subscription that covers the feed; "
        "--feed sip needs a paid plan)"
    )


def _reset_wait(response: Any, now: float) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch seconds), or None when the header is absent or bad."""
    value = None if response is None else response.headers.get("X-RateLimit-Reset")
    if value is None:
        return None
    try:
        return max(0.0, float(value) - now)
    except ValueError:
        return None


def api_message(exc: Any) -> str:
    """The message of an alpaca-py ``APIError`` (Alpaca's JSON ``message``, else the body, short)."""
    try:
        return str(exc.message)
    except Exception:  # noqa: BLE001 - body not Alpaca's JSON: quote it short
        return str(exc)[:200]


def call_with_retries(
    call: Callable[[], Any],
    policy: RetryPolicy,
    what: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Any:
    """Run one HTTP *call* under *policy*; map auth failures and exhausted retries to BrokerError.

    *what* names the request in messages (never containing keys). 429 waits until
    ``X-RateLimit-Reset`` (at most ``max_wait_s``), 5xx and connection errors back off
    ``backoff_s * 2**attempt`` (at most ``max_wait_s``). Other API errors are re-raised.
    """
    import requests
    from alpaca.common.exceptions import APIError

    attempt = 0
    while True:
        try:
            return call()
        except APIError as exc:
            status = exc.status_code
            if status in (401, 403):
                raise _keys_refused(status) from None
            if status not in RETRY_STATUSES:
                raise
            reason = f"HTTP {status} ({api_message(exc)})"
            wait = _reset_wait(exc.response, clock()) if status == 429 else None
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = f"no answer ({type(exc).__name__})"
            wait = None
        if attempt >= policy.max_retries:
            raise BrokerError(
                f"Alpaca {what} failed: {reason}, {attempt + 1} time(s) in a row (retries exhausted: "
                f"max_retries={policy.max_retries}); nothing was written. Try again later, or check "
                "https://status.alpaca.markets"
            ) from None
        if wait is None:
            wait = policy.backoff_s * 2**attempt
        wait = min(wait, policy.max_wait_s)
        log.warning("Alpaca %s: %s; retry %d of %d in %.1f s", what, reason, attempt + 1, policy.max_retries, wait)
        sleep(wait)
        attempt += 1


def retrying(client_cls: type, config: AlpacaConfig, **kwargs: Any) -> Any:
    """An instance of the alpaca-py client *client_cls* (raw dicts) whose every HTTP request runs under ``config.retry``.

    alpaca-py's own retry is switched off for these requests (it is asked for 0 retries),
    so the bounded policy of :func:`call_with_retries` is the only one. Keys come from
    :func:`~engine.adapters.alpaca.config.credentials`; *kwargs* go to the client.
    """
    policy = config.retry
    key_id, secret = credentials()

    class _Client(client_cls):  # type: ignore[misc, valid-type]
        def _one_request(self, method: str, url: str, opts: dict[str, Any], retry: int) -> Any:
            opts = {**opts, "timeout": policy.timeout_s}
            parent = super()._one_request
            what = f"{method} {url.split('?', 1)[0]}"
            return call_with_retries(lambda: parent(method, url, opts, 0), policy, what)

    _Client.__name__ = _Client.__qualname__ = f"Retrying{client_cls.__name__}"
    return _Client(key_id, secret, raw_data=True, url_override=config.resolved_data_url(), **kwargs)
