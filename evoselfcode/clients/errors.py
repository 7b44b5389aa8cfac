"""Every error a client raises, and the one place where urllib3 exceptions and HTTP statuses become them.

    LLMError
    ├── RequestError                 no usable HTTP response (retryable)
    │   ├── Timeout                  connect or read timeout
    │   └── ConnectError             refused, reset, DNS, broken connection
    ├── StatusError                  the server answered with an error status
    │   ├── RateLimited              429, carries `retry_after` (retryable)
    │   ├── ServerError              5xx, 408 (retryable)
    │   └── BadRequest               400/401/403/404/422, other 4xx, 3xx redirects (never retried)
    ├── ResponseFormatError          200 whose body is not JSON or lacks the expected fields (retryable)
    ├── CircuitOpen                  the breaker refuses to send: the server kept failing
    └── ScoringUnsupported           the server cannot return prompt log-probs

Retry decisions read `err.retryable`, which each class sets; never the message text.
Messages say what to do and name the URL; they never contain header values (see `Redactor`).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

_BODY_CHARS = 300


class LLMError(Exception):
    retryable = False

    def __init__(self, message: str, *, url: str = ""):
        super().__init__(message)
        self.url = url


class RequestError(LLMError):
    retryable = True


class Timeout(RequestError):
    pass


class ConnectError(RequestError):
    pass


class StatusError(LLMError):
    def __init__(self, message: str, *, url: str = "", status: int = 0, body: str = ""):
        super().__init__(message, url=url)
        self.status = status
        self.body = body


class RateLimited(StatusError):
    retryable = True

    def __init__(self, message: str, *, url: str = "", status: int = 429, body: str = "", retry_after: float | None):
        super().__init__(message, url=url, status=status, body=body)
        self.retry_after = retry_after


class ServerError(StatusError):
    retryable = True


class BadRequest(StatusError):
    retryable = False


class ResponseFormatError(LLMError):
    retryable = True


class CircuitOpen(LLMError):
    retryable = False


class ScoringUnsupported(LLMError):
    retryable = False


def display_url(url: str) -> str:
    """The URL without any user:password part, fit for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


class Redactor:
    """Replaces header values (and the words inside them, e.g. a bare token after 'Bearer') with ***."""

    def __init__(self, secrets: Iterable[str] = ()):
        words = set()
        for value in secrets:
            words.add(value)
            words.update(w for w in value.split() if len(w) >= 6)
        # longest first, so a whole value is replaced before its parts
        self._words = sorted((w for w in words if len(w) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for word in self._words:
            text = text.replace(word, "***")
        return text


def _snippet(body: str) -> str:
    body = " ".join(body.split())
    return body if len(body) <= _BODY_CHARS else body[:_BODY_CHARS] + "..."


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(
    status: int, *, url: str, body: str, headers: dict | None = None, redact: Redactor | None = None
) -> StatusError:
    redact = redact or Redactor()
    shown = display_url(url)
    snippet = redact(_snippet(body))
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    said = f"{shown} answered {status} {reason}".rstrip() + (f": {snippet}" if snippet else "")
    if 300 <= status < 400:
        location = redact(str((headers or {}).get("Location") or "elsewhere"))
        return BadRequest(
            f"{shown} answered {status} {reason}".rstrip() + f", redirecting to {display_url(location)}; redirects "
            "are not followed: set api.base_url (and api.route) to the address the server redirects to",
            url=url,
            status=status,
            body=snippet,
        )
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        wait = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
        return RateLimited(
            f"{said}{wait}; the server is rate limiting: lower api.rate_limit.requests_per_s or io.concurrency",
            url=url,
            body=snippet,
            retry_after=retry_after,
        )
    if status >= 500 or status == 408:
        return ServerError(
            f"{said}; the server failed, check its logs (retried up to api.max_retries times)",
            url=url,
            status=status,
            body=snippet,
        )
    if status in (401, 403):
        hint = "check api.headers (e.g. Authorization: Bearer ${QWEN_API_KEY}) and that the variable is exported"
    elif status == 404:
        hint = "check api.base_url, api.route and api.model against the server (try `evoselfcode probe`)"
    else:
        hint = "the server rejected the request: check api.model and the generation parameters in the config"
    return BadRequest(f"{said}; {hint}", url=url, status=status, body=snippet)


def translate_request_exception(
    exc: Exception, *, url: str, timeout: tuple[float, float], redact: Redactor | None = None
) -> RequestError:
    """Map a urllib3 exception (or an OSError from under it) to our tree; callers `raise ...(...) from exc`."""
    from urllib3 import exceptions as u3  # here: every CLI step imports this module for LLMError

    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # only when a caller's pool retries itself; the Transport's never does
    redact = redact or Redactor()
    shown = display_url(url)
    cause = redact(_reason(exc))
    if isinstance(exc, u3.ConnectTimeoutError) and not isinstance(exc, u3.NewConnectionError):
        return Timeout(
            f"could not connect to {shown} within {timeout[0]:g}s ({cause}); check that the server is up "
            "and reachable, or raise api.timeout.connect",
            url=url,
        )
    if isinstance(exc, u3.TimeoutError | TimeoutError) and not isinstance(exc, u3.NewConnectionError):
        return Timeout(
            f"no response from {shown} within {timeout[1]:g}s; the server is slow or overloaded: "
            "raise api.timeout.read or lower io.concurrency",
            url=url,
        )
    if isinstance(exc, u3.ProxyError):
        return ConnectError(
            f"connection to {shown} through the proxy failed ({cause}); check the HTTP_PROXY, HTTPS_PROXY "
            "and NO_PROXY environment variables",
            url=url,
        )
    if isinstance(exc, u3.SSLError):
        return ConnectError(
            f"TLS connection to {shown} failed ({cause}); check the server's certificate, or point "
            "REQUESTS_CA_BUNDLE or SSL_CERT_FILE at the CA bundle that signed it",
            url=url,
        )
    if isinstance(exc, u3.NewConnectionError | u3.ProtocolError | u3.PoolError | OSError):
        return ConnectError(
            f"connection to {shown} failed ({cause}); check that the server is running and api.base_url is right",
            url=url,
        )
    return RequestError(f"request to {shown} failed ({cause}); check api.base_url", url=url)


def _reason(exc: BaseException) -> str:
    """The innermost cause's class and message: 'ConnectionRefusedError: [Errno 111] ...'."""
    inner: BaseException = exc
    seen = set()
    while True:
        nxt = inner.__cause__ or inner.__context__
        args = [a for a in getattr(inner, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(inner, "reason", None)
        nxt = nxt or (args[-1] if args else None) or (reason if isinstance(reason, BaseException) else None)
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(inner))
        inner = nxt
    text = re.sub(r"<[^>]*object at 0x[0-9a-f]+>:?\s*", "", str(inner)).strip()
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__
