"""The HTTP service: the only part that moves bytes, and the only part users may replace.

Parsing, error classification and retries stay in the library, so a custom service gets them
for free in sync, async and batch sends.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client
import importlib
import logging
import os
import ssl
import threading
import traceback
import urllib.error
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_match_hostname import CertificateError

from .errors import (
    ConfigurationError,
    DeliveryError,
    LocalResourceError,
    NetworkError,
    RequestTimeout,
    redact,
)
from .privacy import shown_url

DEFAULT_POOL_SIZE = 32
# urllib3's loggers that quote a request's URL: at DEBUG (as LOGLEVEL=DEBUG shows them), and
# urllib3.connection at WARNING, whatever the level, for an answer with malformed headers
_URLLIB3_URL_LOGGERS = (
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "urllib3.poolmanager",
)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpServiceInterface(ABC):
    """Sends one HTTP request and returns the answer, whatever its status.

    Implementations must be thread-safe: one instance serves every request of the process.
    They may raise `NetworkError` themselves; `requests`, `urllib3`, `http.client` and
    `OSError` exceptions are classified by the library, and an error status raised as an
    exception (urllib's `HTTPError`, requests' `raise_for_status()`) is read as the answer.
    """

    @abstractmethod
    def execute(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> HttpResponse: ...


class RequestsHttpService(HttpServiceInterface):
    """A pooled `requests.Session` with keep-alive; retries are left to the library.

    `ca_bundle_path`: the CA certificates (a PEM file) to verify Graph's certificate with, as
    Meta's ``RequestOptions(ca_bundle_path=...)`` — say behind a TLS-inspecting proxy. Given
    with each request, so it wins over ``REQUESTS_CA_BUNDLE`` (a session's ``verify`` does
    not). None: requests' own (certifi, or that variable).
    """

    def __init__(
        self, pool_size: int = DEFAULT_POOL_SIZE, *, ca_bundle_path: str | None = None
    ) -> None:
        if ca_bundle_path and not os.path.exists(ca_bundle_path):
            # else each request would fail as a network error, retried for minutes, and taken
            # for one that may have been delivered
            raise ConfigurationError(
                f"ca_bundle_path {ca_bundle_path!r} does not exist: give the PEM file (or the "
                "directory) of the CAs to verify Graph's certificate with"
            )
        self.ca_bundle_path = ca_bundle_path
        self._tls: dict[str, Any] = {"verify": ca_bundle_path} if ca_bundle_path else {}
        self.session = requests.Session()
        self.session.auth = _GraphUrlCredentialsOnly()
        adapter = _AnyHeadersAdapter(
            pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        _live_services.add(self)

    def execute(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> HttpResponse:
        response = self.session.request(
            method,
            url,
            headers=dict(headers),
            data=body,
            timeout=timeout,
            allow_redirects=False,
            stream=True,  # the connection stays the response's until its body is read
            **self._tls,
        )
        with response:
            if response.status_code > 599:
                # http.client refuses a status past 999 as a bad status line; one HTTP has not
                # either (999: a firewall's refusal) is no more an answer to classify
                raise requests.RequestException(
                    f"the server answered with status {response.status_code}, which HTTP has not"
                )
            if response.status_code < 200:
                # http.client skips a 100 Continue, but takes any other interim answer (102
                # Processing, 103 Early Hints) for the final one, which follows on the same
                # connection: closed, not pooled, where the next request would read that
                # answer as its own
                response.raw.close()
                return HttpResponse(response.status_code, response.headers, b"")
            answer = response.content
            # urllib3 1.x hands back a body cut short of its Content-Length as if it were
            # whole (2.x raises this): the part that arrived is no answer to judge the request
            # by, the connection broke after sending it
            missing = getattr(response.raw, "length_remaining", None)
            if missing:
                raise requests.exceptions.ChunkedEncodingError(
                    urllib3.exceptions.IncompleteRead(response.raw.tell(), missing)
                )
            return HttpResponse(response.status_code, response.headers, answer)

    def close(self) -> None:
        self.session.close()

    def _drop_inherited_connections(self) -> None:
        """New, empty pools in a forked child; the session keeps its settings (a subclass's
        proxies, headers, adapters). The old pools are dropped, not closed: their locks, as
        the cookie jar's, may have been held at the fork by a thread the child does not have.
        """
        if isinstance(self.session.cookies, requests.cookies.RequestsCookieJar):
            # its cookies and policy, under a lock of its own (it reads the old jar unlocked)
            self.session.cookies = self.session.cookies.copy()
        for adapter in self.session.adapters.values():
            if isinstance(adapter, HTTPAdapter):
                # an adapter's pickled state leaves its pools out: set again, it makes new
                # ones (the typing stubs of requests leave these two methods out)
                pickled: Any = adapter
                pickled.__setstate__(pickled.__getstate__())


class _QuietConnection(urllib3.connection.HTTPConnection):
    #: http.client prints each request and answer to stdout, the body and with it the access
    #: token, once `http.client.HTTPConnection.debuglevel` is set, as requests' documentation
    #: shows to debug a program: stdout is the target's state stream
    debuglevel = 0


class _QuietHTTPSConnection(urllib3.connection.HTTPSConnection):
    debuglevel = 0


class _QuietPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _QuietConnection


class _QuietHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _QuietHTTPSConnection


#: urllib3's own pools, which the quiet ones replace (a SOCKS proxy's are left as they are)
_POOLS = {"http": urllib3.HTTPConnectionPool, "https": urllib3.HTTPSConnectionPool}
_QUIET_POOLS = {"http": _QuietPool, "https": _QuietHTTPSPool}


class _QuietAdapter(HTTPAdapter):
    """Connections that print nothing, whatever http.client's debug level."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _quiet(self.poolmanager)

    def proxy_manager_for(self, proxy: Any, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _quiet(manager)
        return manager


def _quiet(manager: Any) -> None:
    if manager.pool_classes_by_scheme == _POOLS:
        manager.pool_classes_by_scheme = _QUIET_POOLS


class _AnyHeadersAdapter(_QuietAdapter):
    """requests before 2.34 fail with AttributeError on an answer whose Content-Type has a
    charset without a value ("application/json; charset", psf/requests#6646): that parameter
    is dropped before requests reads it. The service reads bytes, never a charset."""

    def build_response(self, req: Any, resp: Any) -> requests.Response:
        content_type = resp.headers.get("Content-Type")
        if isinstance(content_type, str) and ";" in content_type:
            media_type, *parameters = content_type.split(";")
            kept = [part for part in parameters if part.strip().lower() != "charset"]
            if len(kept) < len(parameters):
                resp.headers["Content-Type"] = ";".join([media_type, *kept])
        return super().build_response(req, resp)


class _MaskedUrls(logging.Filter):
    """Masks the userinfo, query and fragment of the URLs urllib3 logs, as everywhere else a URL
    built from graph_url is shown: someone may have put a token there; and the secrets of the
    requests sent (`mask_in_http_logs`), which a gateway's path may hold."""

    def __init__(self) -> None:
        super().__init__()
        # an ordered set of the newest ones: a process sends with one token, or a few
        self.secrets: dict[str, None] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            secrets = tuple(self.secrets)
            record.args = tuple(
                redact(shown_url(value), secrets) if isinstance(value, str) else value
                for value in record.args
            )
        return True


_URL_MASKING = _MaskedUrls()
_MASKED_SECRETS_KEPT = 32
# urllib3's loggers are the process's, not this service's: filtered once, on import
for _name in _URLLIB3_URL_LOGGERS:
    logging.getLogger(_name).addFilter(_URL_MASKING)


def mask_in_http_logs(*secrets: str | None) -> None:
    """Have the HTTP libraries' log lines (urllib3's, at DEBUG: each request's path) mask
    these secrets too."""
    new = [secret for secret in secrets if secret and secret not in _URL_MASKING.secrets]
    if new:
        # a new dict, not the one changed: another thread's filter may be iterating it
        kept = [*_URL_MASKING.secrets, *new][-_MASKED_SECRETS_KEPT:]
        _URL_MASKING.secrets = dict.fromkeys(kept)


#: What HTTP libraries raise for a failed exchange. http.client's own (a cut answer's
#: IncompleteRead, a BadStatusLine) reach a service built on urllib or http.client as they
#: are; requests and urllib3 wrap them in theirs.
_TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
    http.client.HTTPException,
)
#: What the HTTP library raises for a request it cannot make as configured (a proxy URL it
#: cannot read, a SOCKS proxy without PySocks installed): before a byte is sent, and again on
#: every retry.
_UNSENDABLE_REQUEST_ERRORS = (
    http.client.InvalidURL,  # urllib's and http.client's: a control character in the URL
    requests.exceptions.InvalidURL,  # InvalidProxyURL too
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    urllib3.exceptions.LocationValueError,  # ProxySchemeUnknown too
)


def answer_in_error(error: BaseException) -> HttpResponse | None:
    """Graph's answer, when a service's HTTP library raised it as an exception: urllib's
    `urlopen` does for every status from 400, `requests` on `raise_for_status()`.

    It is read as the answer it is (an auth error stops at once), not as a network failure
    retried and maybe delivered; None if the exception carries no answer that can be read."""
    try:
        if isinstance(error, urllib.error.HTTPError):
            if not 100 <= error.code <= 599:
                return None  # no HTTP status: a network failure, as the default service says
            body = error.read() if error.fp is not None else b""
            return HttpResponse(error.code, dict(error.headers or {}), body or b"")
        if isinstance(error, requests.HTTPError) and error.response is not None:
            answer = error.response
            return HttpResponse(answer.status_code, dict(answer.headers), answer.content)
    except Exception:  # the answer's body cut short: the exception is classified as it is
        return None
    return None


def classify_transport_error(error: BaseException) -> NetworkError | ConfigurationError | None:
    """The NetworkError matching an exception raised while sending, a ConfigurationError for a
    request the HTTP library could not make at all, or None if it is neither."""
    if isinstance(error, NetworkError):
        return error
    if not isinstance(error, _TRANSPORT_ERRORS):
        return None
    name = type(error).__name__
    text = _failure_text(error)
    if isinstance(error, _UNSENDABLE_REQUEST_ERRORS):
        return ConfigurationError(
            f"the HTTP library cannot make the request, nothing was sent ({name}): {text}"
        )
    # Read by cause, as each library wraps the other's exceptions: requests raises a timeout
    # while reading the body as a ConnectionError, urllib3 (a custom service's) a refused
    # connection as a NewConnectionError, which is one of its ConnectTimeoutErrors, or in a
    # MaxRetryError. Only a refused (or unresolvable) connection, or one that timed out
    # connecting, is known not to have reached Graph.
    opening = _caused_by(error, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError))
    shortages = _LOCAL_SHORTAGES if opening else NO_DESCRIPTOR_LEFT
    if any(getattr(cause, "errno", None) in shortages for cause in _chain(error)):
        return LocalResourceError(
            f"this machine refused what the request needs ({name}): {text}",
            maybe_delivered=False,
        )
    if opening:
        return NetworkError(f"connection failed ({name}): {text}", maybe_delivered=False)
    if _caused_by(error, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return RequestTimeout(f"connect timeout ({name}): {text}", maybe_delivered=False)
    if _caused_by(error, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return RequestTimeout(f"timeout ({name}): {text}")
    if _caused_by(error, _UNTRUSTED_CERTIFICATE_ERRORS):
        return NetworkError(
            f"the server's TLS certificate is not trusted, nothing was sent ({name}): {text}. "
            "Behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE (or the HTTP service's "
            "ca_bundle_path) at its CA",
            maybe_delivered=False,
        )
    if _raised_shaking_hands(error):
        return NetworkError(
            f"the TLS handshake failed, nothing was sent ({name}): {text}", maybe_delivered=False
        )
    if isinstance(error, requests.ConnectionError):
        return NetworkError(f"connection failed ({name}): {text}", maybe_delivered=True)
    return NetworkError(f"network error ({name}): {text}", maybe_delivered=True)


class _GraphUrlCredentialsOnly(requests.auth.AuthBase):
    """The credentials of graph_url's userinfo (a gateway's), if any, and no others. Without an
    auth of its own, requests sends the ~/.netrc entry for the host (or its `default` one) as
    basic auth, to Graph too: a stranger's password, in clear text over http://."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        user, password = requests.utils.get_auth_from_url(request.url or "")
        if user or password:
            return requests.auth.HTTPBasicAuth(user, password)(request)
        return request


def checked_response(answer: Any, service: Any) -> HttpResponse:
    """The answer a service returned, as an HttpResponse (it may also be a plain
    `(status, headers, body)` tuple); DeliveryError, not retried, if it is neither.

    A service returning something else has a bug: said in its name, not as an error from
    deep inside the parsing of the answer."""
    if isinstance(answer, tuple) and len(answer) == 3:
        answer = HttpResponse(*answer)
    if not isinstance(answer, HttpResponse):
        problem = f"a {type(answer).__name__}"
    elif isinstance(answer.status, bool) or not isinstance(answer.status, int):
        problem = f"a status of type {type(answer.status).__name__}"
    elif not 100 <= answer.status <= 599:
        problem = f"status {answer.status}"
    elif not isinstance(answer.headers, Mapping):
        problem = f"headers of type {type(answer.headers).__name__}"
    elif (name_type := _header_name_type_not_text(answer.headers)) is not None:
        problem = f"a header name of type {name_type.__name__}"
    elif not isinstance(answer.body, (bytes, bytearray)):
        problem = f"a body of type {type(answer.body).__name__}"
    else:
        return _with_text_headers(answer)
    raise DeliveryError(
        f"the HTTP service {type(service).__name__} returned {problem}, not an "
        "HttpResponse(status: int from 100 to 599, headers: a mapping of str, body: bytes)"
    )


def _header_name_type_not_text(headers: Mapping[Any, Any]) -> type | None:
    return next((type(name) for name in headers if not isinstance(name, (str, bytes))), None)


def _with_text_headers(answer: HttpResponse) -> HttpResponse:
    """The answer with header names and values given as bytes (as raw HTTP libraries hand
    them) decoded as HTTP's latin-1: read as bytes, a Retry-After would go unheard."""
    items = answer.headers.items()
    if not any(isinstance(part, bytes) for item in items for part in item):
        return answer
    headers = {_text(name): _text(value) for name, value in items}
    return dataclasses.replace(answer, headers=headers)


def _text(part: Any) -> Any:
    return part.decode("latin-1") if isinstance(part, bytes) else part


#: Raised while connecting, before a byte of the request is sent: verifying the certificate,
#: by ssl or, for its host name, by urllib3
_UNTRUSTED_CERTIFICATE_ERRORS = (ssl.SSLCertVerificationError, CertificateError)
#: No descriptor left (the process's limit on open files, the system's). A request needs new
#: ones only before a byte of it is written: its socket, and files it reads on the way (a CA
#: bundle, a module imported at the first request, as requests 2.31 imports netrc).
NO_DESCRIPTOR_LEFT = frozenset({errno.EMFILE, errno.ENFILE})
#: what this machine, not the network, refuses a new connection: descriptors, buffer space,
#: memory (the last two may also fail the reading of an answer, after the request was sent)
_LOCAL_SHORTAGES = NO_DESCRIPTOR_LEFT | {errno.ENOBUFS, errno.ENOMEM}


def _failure_text(error: BaseException) -> str:
    """The error's text, or for urllib3's MaxRetryError (which requests wraps) the text of the
    failure behind it: its "Max retries exceeded" counts urllib3's own retries, which the
    library leaves at none (it retries by its RetryPolicy), so it told of retries never made."""
    for cause in _chain(error):
        if isinstance(cause, urllib3.exceptions.MaxRetryError) and isinstance(
            cause.reason, BaseException
        ):
            return str(cause.reason)
    return str(error)


def _caused_by(error: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(cause, types) for cause in _chain(error))


def _raised_shaking_hands(error: BaseException) -> bool:
    """Whether an ssl error behind `error` was raised by the TLS handshake (an https
    graph_url on a plain-HTTP port, a protocol both ends lack), which comes before a byte of
    the request is sent; ssl errors while the answer is read come later."""
    return any(
        isinstance(cause, ssl.SSLError)
        and any(
            frame.f_code.co_name == "do_handshake"
            for frame, _ in traceback.walk_tb(cause.__traceback__)
        )
        for cause in _chain(error)
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception behind it, however each library wrapped the other's."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend((current.__cause__, current.__context__))
        # urllib3's errors keep theirs in `reason`; an ssl.SSLError's is text (its OpenSSL name)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))


_default_service: RequestsHttpService | None = None
_loaded_services: dict[Any, Any] = {}
# reentrant: a service class made by load_http_service may load another in its __init__ (the
# default one, to wrap it), under the lock its own loading holds
_lock = threading.RLock()
_live_services: weakref.WeakSet[RequestsHttpService] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child inherits the parent's pooled sockets: sending on one from both processes
    # mixes their requests and answers on one connection. A lock held at the fork by
    # another thread would stay held forever.
    global _lock
    _lock = threading.RLock()
    for service in list(_live_services):
        service._drop_inherited_connections()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_http_service() -> RequestsHttpService:
    """The process-wide pooled service used when none is configured."""
    global _default_service
    with _lock:
        if _default_service is None:
            _default_service = RequestsHttpService()
        return _default_service


def load_http_service(spec: HttpServiceInterface | str | type | None) -> HttpServiceInterface:
    """Resolve an HTTP service given as an object, a class, or "package.module:ClassName".

    None gives the shared default. A class or path is instantiated once (without arguments) and
    that instance is shared, so its connection pool is too.
    """
    if spec is None:
        return default_http_service()
    if isinstance(spec, (str, type)):
        with _lock:
            service = _loaded_services.get(spec)
            if service is None:
                service = _instantiate(_import_class(spec) if isinstance(spec, str) else spec)
                _loaded_services[spec] = service
        return service
    _require_execute(spec, type(spec).__name__)
    return spec


def _import_class(path: str) -> type:
    module_name, separator, class_name = path.strip().rpartition(":")
    if not separator:
        module_name, _, class_name = path.strip().rpartition(".")
    if not module_name or not class_name:
        raise ConfigurationError(
            f"http service {path!r} is not a path of the form 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigurationError(
            f"http service {path!r}: cannot import module {module_name!r}: {error}"
        ) from error
    except Exception as error:  # the module's own code failed, or a relative name ('.x')
        raise ConfigurationError(
            f"http service {path!r}: importing module {module_name!r} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigurationError(
            f"http service {path!r}: module {module_name!r} has no class {class_name!r}"
        )
    return cls


def _instantiate(cls: type) -> Any:
    try:
        service = cls()
    except Exception as error:
        raise ConfigurationError(
            f"http service class {cls.__module__}.{cls.__qualname__} could not be created "
            f"without arguments: {type(error).__name__}: {error}"
        ) from error
    _require_execute(service, cls.__qualname__)
    return service


def _require_execute(service: Any, name: str) -> None:
    if not callable(getattr(service, "execute", None)):
        raise ConfigurationError(
            f"http service {name} has no execute(method, url, headers, body, timeout) method"
        )
