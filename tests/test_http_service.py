import http.client
import io
import logging
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable

import pytest
import requests
import urllib3
from urllib3.exceptions import MaxRetryError, NewConnectionError

from target_meta_capi.capi import EventRequest, RequestObserver, RetryPolicy
from target_meta_capi.capi.errors import (
    AuthError,
    ConfigurationError,
    DeliveryError,
    LocalResourceError,
    NetworkError,
    RequestTimeout,
    ThrottledError,
)
from target_meta_capi.capi.http import (
    HttpResponse,
    HttpServiceInterface,
    RequestsHttpService,
    classify_transport_error,
    default_http_service,
    load_http_service,
)
from tests._http_fixture import (
    HANDLER_WAIT_SECONDS,
    FakeGraphServer,
    RecordingHttpService,
    Reply,
    closed_port,
    graph_error,
    success,
)

HEADERS = {"Content-Type": "application/json"}


class NotAService:
    pass


class NeedsArguments(HttpServiceInterface):
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def execute(self, method, url, headers, body, timeout):
        raise AssertionError("never called")


def test_requests_service_returns_error_statuses_instead_of_raising():
    with FakeGraphServer(lambda request: graph_error(400, 190)) as server:
        answer = RequestsHttpService().execute("POST", server.url + "/x", HEADERS, b"{}", 5.0)
    assert answer.status == 400
    assert b'"code": 190' in answer.body
    assert answer.headers["Content-Type"] == "application/json"


def test_requests_service_sends_method_headers_and_body():
    with FakeGraphServer(lambda request: success(1)) as server:
        RequestsHttpService().execute("POST", server.url + "/p", HEADERS, b'{"a":1}', 5.0)
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("POST", "/p", b'{"a":1}')
    assert request.headers["Content-Type"] == "application/json"


def test_requests_service_keeps_the_connection_alive():
    service = RequestsHttpService()
    with FakeGraphServer(lambda request: success(1)) as server:
        for _ in range(3):
            service.execute("POST", server.url + "/p", HEADERS, b"{}", 5.0)
    assert len({request.client_port for request in server.requests}) == 1


def test_close_ends_the_kept_alive_connection():
    service = RequestsHttpService()
    with FakeGraphServer(lambda request: success(1)) as server:
        service.execute("POST", server.url + "/p", HEADERS, b"{}", 5.0)
        service.close()
        service.execute("POST", server.url + "/p", HEADERS, b"{}", 5.0)
    assert len({request.client_port for request in server.requests}) == 2


def test_default_service_is_shared_and_pools_at_least_32_connections():
    service = load_http_service(None)
    assert service is default_http_service()
    adapter = service.session.get_adapter("https://graph.facebook.com")
    assert adapter.poolmanager.connection_pool_kw["maxsize"] >= 32


def test_service_object_is_used_as_given():
    service = RecordingHttpService()
    assert load_http_service(service) is service


def test_service_class_is_instantiated_once_and_shared():
    first = load_http_service(RecordingHttpService)
    assert isinstance(first, RecordingHttpService)
    assert load_http_service(RecordingHttpService) is first


_WRAPPING_SERVICE_SENDS = """
import sys
import time

from target_meta_capi.capi import EventRequest, HttpServiceInterface, load_http_service

class Logging(HttpServiceInterface):
    def __init__(self):
        self.inner = load_http_service(None)  # the default service, wrapped

    def execute(self, method, url, headers, body, timeout):
        print("sending", url.rpartition("/v")[2], flush=True)
        return self.inner.execute(method, url, headers, body, timeout)

request = EventRequest("1234567890", events=[{"event_name": "Lead", "event_time": int(time.time()),
    "action_source": "system_generated", "user_data": {"external_id": ["a" * 64]}}],
    access_token="sandbox-token", graph_url=sys.argv[1], http_service=Logging)
print(request.execute().events_received)
"""


def test_a_service_class_loading_the_default_service_to_wrap_it_sends(sandbox):
    # in a process of its own: a deadlock would hold the process-wide lock of services
    sent = subprocess.run(
        [sys.executable, "-c", _WRAPPING_SERVICE_SENDS, sandbox.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.stdout.splitlines() == ["sending 24.0/1234567890/events", "1"], sent.stderr


@pytest.mark.parametrize(
    "path", ["tests._http_fixture:RecordingHttpService", "tests._http_fixture.RecordingHttpService"]
)
def test_service_is_loaded_from_a_dotted_path(path):
    assert isinstance(load_http_service(path), RecordingHttpService)


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("RecordingHttpService", "package.module:ClassName"),
        ("tests.no_such_module:Service", "cannot import module"),
        ("tests._http_fixture:NoSuchClass", "has no class"),
        ("tests.test_http_service:NotAService", "no execute"),
        ("tests.test_http_service:NeedsArguments", "without arguments"),
        (".relative:Service", "importing module '.relative' failed: TypeError"),
    ],
)
def test_unusable_service_path_is_a_configuration_error(path, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        load_http_service(path)


def test_connection_refused_is_a_network_error_that_was_not_delivered():
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(requests.RequestException) as raised:
        RequestsHttpService().execute("POST", url, HEADERS, b"", 2)
    error = classify_transport_error(raised.value)
    assert type(error) is NetworkError
    assert error.maybe_delivered is False


def test_a_refused_connections_error_says_what_failed_not_urllib3s_max_retries():
    # urllib3's own retries are none (the library retries by its policy), yet requests's
    # text said "Max retries exceeded"
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(requests.RequestException) as raised:
        RequestsHttpService().execute("POST", url, HEADERS, b"", 2)
    text = str(classify_transport_error(raised.value))
    assert "Max retries" not in text
    assert "Failed to establish a new connection" in text
    assert text.startswith("connection failed (ConnectionError): ")


@pytest.mark.parametrize(
    ("retries", "urllib3_raises"),
    [(False, NewConnectionError), (0, MaxRetryError)],
    ids=["raised-as-is", "in-max-retry-error"],
)
def test_a_connection_refused_to_a_service_on_urllib3_is_a_network_error_not_delivered(
    retries, urllib3_raises
):
    url = f"http://127.0.0.1:{closed_port()}/"
    with urllib3.PoolManager(retries=retries) as pool, pytest.raises(urllib3_raises) as raised:
        pool.request("POST", url, body=b"{}", headers=HEADERS, timeout=2.0)
    error = classify_transport_error(raised.value)
    assert type(error) is NetworkError
    assert error.maybe_delivered is False


def test_a_connection_past_the_limit_on_open_files_is_this_machines_shortage_not_delivered():
    url = f"http://127.0.0.1:{closed_port()}/"
    service = RequestsHttpService()
    with pytest.raises(requests.RequestException):
        service.execute("POST", url, HEADERS, b"{}", 2)  # whatever it imports, imported
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no descriptor more
    try:
        with pytest.raises(requests.RequestException) as raised:
            service.execute("POST", url, HEADERS, b"{}", 2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    error = classify_transport_error(raised.value)
    assert type(error) is LocalResourceError
    assert error.maybe_delivered is False
    assert str(error).startswith("this machine refused what the request needs (ConnectionError): ")
    assert "Too many open files" in str(error)


def test_read_timeout_is_a_request_timeout_that_may_have_been_delivered():
    release = threading.Event()

    def stall(request):
        release.wait(HANDLER_WAIT_SECONDS)
        return success(1)

    with FakeGraphServer(stall) as server:
        with pytest.raises(requests.ReadTimeout) as raised:
            RequestsHttpService().execute("POST", server.url + "/", HEADERS, b"{}", 0.2)
        release.set()  # the stalled answer, no longer waited for
    error = classify_transport_error(raised.value)
    assert type(error) is RequestTimeout
    assert error.maybe_delivered is True


def test_connect_timeout_is_a_request_timeout_that_was_not_delivered():
    # a listener whose queue of connections to accept is full: Linux drops further SYNs,
    # so connecting waits out its timeout
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with pytest.raises(requests.RequestException) as raised:
            RequestsHttpService().execute("POST", url, HEADERS, b"{}", 0.2)
    error = classify_transport_error(raised.value)
    assert type(error) is RequestTimeout
    assert error.maybe_delivered is False


def _error_answered_by(answer: Callable[[socket.socket], None], timeout: float = 5.0) -> Exception:
    """What RequestsHttpService raises for a request to a raw server on 127.0.0.1 that reads
    it, then does `answer` with the connection and closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def read_and_answer():
        connection, _ = listener.accept()
        connection.recv(65536)
        answer(connection)
        connection.close()

    server = threading.Thread(target=read_and_answer)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    with pytest.raises(requests.RequestException) as raised:
        RequestsHttpService().execute("POST", url, HEADERS, b"{}", timeout)
    server.join()
    listener.close()
    return raised.value


def test_connection_cut_after_the_request_may_have_been_delivered():
    error = classify_transport_error(_error_answered_by(lambda connection: None))
    assert type(error) is NetworkError
    assert error.maybe_delivered is True


def test_an_answer_cut_short_of_its_content_length_is_a_network_error_maybe_delivered():
    def answer_in_part(connection: socket.socket) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"events_received": 1'
        )

    error = classify_transport_error(_error_answered_by(answer_in_part))
    assert type(error) is NetworkError
    assert error.maybe_delivered is True


def test_an_answer_stalling_past_the_timeout_after_its_headers_is_a_request_timeout():
    def stall_after_the_headers(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        connection.settimeout(HANDLER_WAIT_SECONDS)
        while connection.recv(65536):  # until the client, timed out, closes the connection
            pass

    error = classify_transport_error(_error_answered_by(stall_after_the_headers, timeout=0.2))
    assert type(error) is RequestTimeout
    assert error.maybe_delivered is True


def _read_request(stream: io.BufferedReader) -> bytes:
    """One whole request (head and body), or b"" once the client closed the connection."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return b""
        head += line
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head + stream.read(length)


def test_the_final_answer_after_an_interim_103_is_not_read_as_the_next_requests_answer():
    """A server answering its first request 103 Early Hints, then its final answer only once a
    next request came on that connection (a slow final answer, made certain)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer(request: bytes, events: int) -> bytes:
        body = b'{"events_received": %d, "request": "%s"}' % (events, request)
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        first, _ = listener.accept()
        first.settimeout(HANDLER_WAIT_SECONDS)
        requests_on_first = first.makefile("rb")
        _read_request(requests_on_first)
        first.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
        if _read_request(requests_on_first):  # the next request, on this very connection
            first.sendall(answer(b"first", 1) + answer(b"second", 2))
            first.close()
            return
        first.close()
        second, _ = listener.accept()
        second.settimeout(HANDLER_WAIT_SECONDS)
        _read_request(second.makefile("rb"))
        second.sendall(answer(b"second", 2))
        second.close()

    server = threading.Thread(target=serve)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    service = RequestsHttpService()
    interim = service.execute("POST", url, HEADERS, b"{}", 5.0)
    final = service.execute("POST", url, HEADERS, b"{}", 5.0)
    server.join()
    listener.close()
    assert interim.status == 103
    assert b'"request": "second"' in final.body


def test_an_answer_with_a_status_http_has_not_is_a_network_error_not_blamed_on_the_service():
    def refuse_as_a_firewall(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 999 Request denied\r\nContent-Length: 0\r\n\r\n")

    error = classify_transport_error(_error_answered_by(refuse_as_a_firewall))
    assert type(error) is NetworkError
    assert "status 999, which HTTP has not" in str(error)


def test_an_answer_whose_content_type_has_a_charset_without_a_value_is_read():
    # requests before 2.34 (make test-lowest installs 2.31) raised AttributeError on it
    answer = Reply(200, b'{"events_received": 1}', content_type="application/json; charset")
    with FakeGraphServer(lambda request: answer) as server:
        response = RequestsHttpService().execute("POST", server.url + "/", HEADERS, b"{}", 5.0)
    assert (response.status, response.body) == (200, b'{"events_received": 1}')


def test_network_error_from_a_custom_service_is_kept():
    error = NetworkError("proxy down", maybe_delivered=False)
    assert classify_transport_error(error) is error


def test_a_proxy_setting_requests_cannot_use_is_a_configuration_error_not_retried(
    sandbox, monkeypatch
):
    monkeypatch.setenv("HTTP_PROXY", "http://:3128")  # no host: requests' InvalidProxyURL
    for bypass in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(bypass, raising=False)
    attempts: list[Exception | None] = []

    class Attempts(RequestObserver):
        def on_attempt(self, events, status, seconds, error):
            attempts.append(error)

    request = EventRequest(
        "1234567890",
        events=[{"event_name": "Lead"}],
        access_token="sandbox-token",
        graph_url=sandbox.url,
        http_service=RequestsHttpService(),
    )
    with pytest.raises(ConfigurationError, match=r"nothing was sent \(InvalidProxyURL\)"):
        request.execute(observer=Attempts())
    assert [type(error) for error in attempts] == [ConfigurationError]


class UrllibService(HttpServiceInterface):
    """A service on the standard library, as README's example: http.client's exceptions reach
    the library as they are."""

    def execute(self, method, url, headers, body, timeout):
        request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return HttpResponse(answer.status, dict(answer.headers), answer.read())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b'{"events_rec',  # IncompleteRead
        b"garbage\r\n\r\n",  # BadStatusLine
    ],
    ids=["cut-body", "bad-status-line"],
)
def test_a_broken_answer_to_a_service_on_urllib_is_a_network_error_retried(answer):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received = []

    def answer_twice():
        for _ in range(2):
            connection, _ = listener.accept()
            received.append(connection.recv(65536))
            connection.sendall(answer)
            connection.close()

    server = threading.Thread(target=answer_twice, daemon=True)
    server.start()
    request = EventRequest(
        "1234567890",
        events=[{"event_name": "Lead"}],
        access_token="token",
        graph_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        http_service=UrllibService(),
        retry_policy=RetryPolicy(max_retries=1, base_delay=0),
    )
    with pytest.raises(NetworkError) as raised:
        request.execute()
    server.join()
    listener.close()
    assert raised.value.maybe_delivered is True
    assert len(received) == 2


class RaisingForStatusService(HttpServiceInterface):
    """A service on requests that raises for an error status, as much requests code does."""

    def execute(self, method, url, headers, body, timeout):
        answer = requests.request(method, url, headers=headers, data=body, timeout=timeout)
        answer.raise_for_status()
        return HttpResponse(answer.status_code, dict(answer.headers), answer.content)


@pytest.mark.parametrize("service", [UrllibService, RaisingForStatusService])
def test_graphs_error_answer_raised_by_the_http_library_is_read_as_graphs_answer(sandbox, service):
    attempts: list[Exception | None] = []

    class Attempts(RequestObserver):
        def on_attempt(self, events, status, seconds, error):
            attempts.append(error)

    request = EventRequest(
        "1234567890",
        events=[{"event_name": "Lead"}],
        access_token="not-the-sandbox-token",
        graph_url=sandbox.url,
        http_service=service(),
        retry_policy=RetryPolicy(max_retries=3, base_delay=0),
    )
    with pytest.raises(AuthError) as raised:
        request.execute(observer=Attempts())
    assert raised.value.code == 190
    assert [type(error) for error in attempts] == [AuthError]


def test_an_error_urllib_raises_for_a_status_http_has_not_is_a_network_error_retried():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_twice():
        for _ in range(2):
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 999 Blocked\r\nContent-Length: 0\r\n\r\n")
            connection.close()

    server = threading.Thread(target=answer_twice, daemon=True)
    server.start()
    request = EventRequest(
        "1234567890",
        events=[{"event_name": "Lead"}],
        access_token="token",
        graph_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
        http_service=UrllibService(),
        retry_policy=RetryPolicy(max_retries=1, base_delay=0),
    )
    with pytest.raises(NetworkError):
        request.execute()
    server.join(timeout=30)
    assert not server.is_alive()  # both attempts arrived: the first was retried
    listener.close()


def test_a_url_http_client_cannot_send_is_a_configuration_error():
    refusal = http.client.InvalidURL("URL can't contain control characters")
    assert type(classify_transport_error(refusal)) is ConfigurationError


def test_unrelated_exceptions_are_not_network_errors():
    assert classify_transport_error(KeyError("x")) is None


def test_a_token_in_graph_urls_path_is_masked_in_urllib3s_debug_lines(caplog):
    # a gateway may take its key in the path; the token pasted there is still the token
    token = "gateway-and-access-token-778899"
    with (
        FakeGraphServer(lambda request: success(1)) as server,
        caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"),
    ):
        EventRequest(
            pixel_id="1", events=[{"event_name": "Lead"}], access_token=token,
            graph_url=f"{server.url}/{token}",
        ).execute()  # fmt: skip
    request_lines = [message for message in caplog.messages if "POST" in message]
    assert request_lines
    assert not any(token in message for message in caplog.messages)


def test_a_message_with_named_arguments_on_urllib3s_logger_is_logged_as_given(caplog):
    # the URL masking filter on urllib3's loggers reads positional arguments only
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        logging.getLogger("urllib3.connectionpool").warning(
            "pool for %(host)s is full", {"host": "graph.example"}
        )
    assert caplog.messages == ["pool for graph.example is full"]


class GarblingService(RequestsHttpService):
    """Sends for real, then hands back the answer the way a buggy service might."""

    garble = staticmethod(lambda answer: answer)

    def execute(self, method, url, headers, body, timeout):
        return self.garble(super().execute(method, url, headers, body, timeout))


@pytest.mark.parametrize(
    ("garble", "complaint"),
    [
        (lambda answer: None, "returned a NoneType"),
        (lambda answer: (answer.status, answer.body), "returned a tuple"),
        (lambda answer: HttpResponse(0, answer.headers, answer.body), "returned status 0"),
        (lambda answer: HttpResponse(600, answer.headers, answer.body), "returned status 600"),
        (lambda answer: HttpResponse(None, answer.headers, answer.body), "status of type None"),
        (lambda answer: HttpResponse(answer.status, None, answer.body), "headers of type None"),
        (
            lambda answer: HttpResponse(answer.status, {None: "x"}, answer.body),
            "a header name of type NoneType",
        ),
        (lambda answer: HttpResponse(answer.status, {}, answer.body.decode()), "body of type str"),
    ],
    ids=[
        "none",
        "short-tuple",
        "status-0",
        "status-600",
        "no-status",
        "no-headers",
        "header-name-none",
        "text-body",
    ],
)
def test_an_answer_that_is_no_http_response_is_a_delivery_error_naming_the_service(
    garble, complaint
):
    service = GarblingService()
    service.garble = garble
    with FakeGraphServer() as server, pytest.raises(DeliveryError, match=complaint) as raised:
        EventRequest(
            pixel_id="1", events=[{"event_name": "Lead"}], access_token="token",
            graph_url=server.url, http_service=service,
        ).execute()  # fmt: skip
    assert "GarblingService" in str(raised.value)
    assert not raised.value.retryable
    assert len(server.requests) == 1


def test_a_netrc_entry_for_the_host_is_not_sent_to_graph(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with FakeGraphServer(lambda request: success(1)) as server:
        EventRequest(
            pixel_id="1", events=[{"event_name": "Lead"}], access_token="token",
            graph_url=server.url,
        ).execute()  # fmt: skip
    assert "Authorization" not in server.requests[0].headers


def test_graph_urls_userinfo_is_sent_as_basic_auth():
    # a gateway in front of Graph may take its credentials in the URL
    with FakeGraphServer(lambda request: success(1)) as server:
        EventRequest(
            pixel_id="1", events=[{"event_name": "Lead"}], access_token="token",
            graph_url=server.url.replace("http://", "http://gate:pass@"),
        ).execute()  # fmt: skip
    assert server.requests[0].headers["Authorization"] == "Basic Z2F0ZTpwYXNz"


def test_headers_given_as_bytes_are_read_as_latin_1_text():
    service = GarblingService()
    service.garble = lambda answer: HttpResponse(
        answer.status,
        {b"Retry-After": b"7", b"Content-Type": b"application/json"},
        answer.body,
    )
    throttle = lambda request: graph_error(400, 17, 2446079)  # noqa: E731
    with FakeGraphServer(throttle) as server, pytest.raises(ThrottledError) as raised:
        EventRequest(
            pixel_id="1", events=[{"event_name": "Lead"}], access_token="token",
            graph_url=server.url, http_service=service, retry_policy=RetryPolicy(max_retries=0),
        ).execute()  # fmt: skip
    assert raised.value.retry_after == 7.0


# --- TLS: the CA bundle to verify Graph with (Meta's RequestOptions(ca_bundle_path)) ---------


@pytest.fixture
def tls_graph(tmp_path):
    """A Graph stand-in on https://127.0.0.1 with a self-signed certificate: (url, its PEM)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = FakeGraphServer()
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    with server:
        yield server.url.replace("http://", "https://"), str(cert)


def test_a_ca_bundle_given_to_the_service_verifies_graph_despite_requests_ca_bundle(
    tls_graph, monkeypatch
):
    url, cert = tls_graph
    # the variable requests reads, naming other CAs: a session's `verify` would lose to it
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    request = EventRequest(
        pixel_id="1234567890",
        events=[{"event_name": "Lead"}],
        access_token="token",
        graph_url=url,
        http_service=RequestsHttpService(ca_bundle_path=cert),
    )

    assert request.execute().events_received == 1


def test_a_ca_bundle_that_does_not_exist_is_a_configuration_error(tmp_path):
    missing = tmp_path / "proxy-ca.pem"
    with pytest.raises(ConfigurationError, match=r"ca_bundle_path '.*proxy-ca.pem' does not exist"):
        RequestsHttpService(ca_bundle_path=str(missing))


def test_without_the_ca_bundle_graphs_unknown_certificate_is_refused(tls_graph):
    url, _ = tls_graph
    service = RequestsHttpService()

    with pytest.raises(requests.exceptions.SSLError):
        service.execute("POST", f"{url}/v24.0/1/events", HEADERS, b"{}", 5)


def test_an_unknown_certificate_is_a_network_error_that_sent_nothing(tls_graph):
    # ssl's errors hold their OpenSSL name as text in `reason`, where urllib3's hold errors
    url, _ = tls_graph
    with pytest.raises(requests.RequestException) as raised:
        RequestsHttpService().execute("POST", f"{url}/v24.0/1/events", HEADERS, b"{}", 5)
    error = classify_transport_error(raised.value)
    assert type(error) is NetworkError
    assert not error.maybe_delivered
    assert "TLS certificate is not trusted" in str(error)
    assert "REQUESTS_CA_BUNDLE" in str(error)


def test_tls_to_a_plain_http_server_is_a_network_error_that_sent_nothing():
    with FakeGraphServer() as server, pytest.raises(requests.RequestException) as raised:
        url = server.url.replace("http://", "https://")
        RequestsHttpService().execute("POST", f"{url}/v24.0/1/events", HEADERS, b"{}", 5)
    error = classify_transport_error(raised.value)
    assert type(error) is NetworkError
    assert not error.maybe_delivered
    assert "TLS handshake failed" in str(error)
    assert server.requests == []


def test_a_tls_failure_while_the_answer_is_read_may_have_delivered_the_request(tls_graph):
    """A TLS server that reads the request, then writes bytes outside TLS where the answer's
    records were due: the request reached it, so the failure is not one of the handshake."""
    _, cert = tls_graph
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, cert.replace("cert.pem", "key.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def answer_outside_tls() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as connection:
            received.append(connection.recv(65536))
            raw_fd = connection.fileno()
            os.write(raw_fd, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = threading.Thread(target=answer_outside_tls, daemon=True)
    server.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/v24.0/1/events"
    with listener, pytest.raises(requests.RequestException) as raised:
        RequestsHttpService(ca_bundle_path=cert).execute("POST", url, HEADERS, b"{}", 5)
    server.join(5)
    error = classify_transport_error(raised.value)
    assert received and received[0].startswith(b"POST /v24.0/1/events")
    assert type(error) is NetworkError
    assert error.maybe_delivered
