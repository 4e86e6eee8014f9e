"""What of an event, or of a URL, may be written where people read it: files, logs, reports.

Hashed customer information (SHA-256 digests) may; every other user_data value — IP address,
user agent, fbc/fbp cookies, unhashed ids — is personal data too, and is masked. Of a URL (the
graph_url setting, and the request URLs built from it), the user:password before the host, the
query string and the fragment are masked: someone may have put a token there. Of an event's
page URLs (event_source_url, referrer_url), the query and fragment are masked, where a site
may have put an e-mail address (`?email=`), and so are an e-mail address in the path and a
userinfo, the host and the rest of the path shown.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._sha256 import is_sha256_hex
from .shapes import Content, CustomData

#: what RFC 3986 allows in a scheme (and none at all, "://host", read as one)
_SCHEME_CHARACTERS = re.compile(r"[A-Za-z0-9+.-]*")

MASK = "<redacted>"

#: an e-mail address anywhere in a text: "ship to jane@example.com", "o'brien@example.com",
#: and percent-encoded in a URL's path: "/unsubscribe/jane%40example.com"
_EMAIL_IN_TEXT = re.compile(r"[\w.+'%-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
#: an event's URLs: their query and fragment may carry an e-mail (?email=) or a token
_URL_FIELDS = ("event_source_url", "referrer_url")
#: text a visitor typed, and app_data's extinfo: the device's model, OS, carrier, screen and
#: time zone, which together single a person out
FREE_TEXT_FIELDS = (("custom_data", "search_string"), ("app_data", "extinfo"))
#: custom_data's parameters, and those of an item of its contents, as Meta defines them. Any
#: other key is a custom property, which holds whatever a table has (a note, an address, a
#: gift's recipient) and cannot be told apart from customer information: masked
_CUSTOM_DATA_PARAMETERS = CustomData.__optional_keys__
_CONTENT_PARAMETERS = Content.__optional_keys__


def redact_user_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every user_data value that is not a SHA-256 digest masked."""
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        return event
    return {**event, "user_data": {key: _mask(value) for key, value in user_data.items()}}


def redact_received_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as sent, masked where no mapping says which fields hold customer information
    (the sandbox's report): `redact_user_data`'s masking; its page URLs as `shown_event`
    shows them; custom_data's search_string and app_data's extinfo; and any value
    with an e-mail address in it, each custom_data value by itself, other fields whole."""
    shown = _with_page_urls_shown(mask_fields(redact_user_data(event), FREE_TEXT_FIELDS))
    masked: dict[str, Any] = {}
    for name, value in shown.items():
        if name == "custom_data" and isinstance(value, dict):
            masked[name] = {
                key: MASK if _holds_email(item) else item for key, item in value.items()
            }
        elif name != "user_data" and _holds_email(value):
            masked[name] = MASK
        else:
            masked[name] = value
    return masked


def _with_page_urls_shown(event: dict[str, Any]) -> dict[str, Any]:
    shown = event
    for name in _URL_FIELDS:
        url = shown.get(name)
        if isinstance(url, str):
            shown = {**shown, name: _shown_page_url(url)}
    return shown


def _shown_page_url(url: str) -> str:
    shown = url
    # the last span first, so the earlier ones' offsets still hold
    for start, end in reversed(_page_url_secret_spans(url)):
        shown = shown[:start] + MASK + shown[end:]
    return shown


def page_url_secrets(event: Mapping[str, Any]) -> Iterator[str]:
    """What `shown_event` masks of the event's page URLs, for cutting out of text that may
    quote them (an error answer echoing the request)."""
    for name in _URL_FIELDS:
        url = event.get(name)
        if isinstance(url, str):
            for start, end in _page_url_secret_spans(url):
                if end > start:
                    yield url[start:end]


def _page_url_secret_spans(url: str) -> list[tuple[int, int]]:
    """Where a page's URL holds what may not be shown, as (start, end) offsets in order: a
    userinfo, each e-mail address in its path (``/unsubscribe/jane@example.com``), and all
    after its first "?" or "#" (``?email=``), even if empty. Unlike graph_url's (`shown_url`),
    the userinfo ends at the last "@" before the path: a page's path may hold one
    (``medium.com/@jane``, ``youtube.com/@shop``), and the host is shown."""
    cut = min((at for at in (url.find("?"), url.find("#")) if at >= 0), default=len(url))
    scheme_end = url.find("://", 0, cut)
    authority_start = scheme_end + 3 if scheme_end >= 0 else 0
    path_start = url.find("/", authority_start, cut)
    path_start = cut if path_start < 0 else path_start
    spans = []
    userinfo_end = url.rfind("@", authority_start, path_start)
    if userinfo_end > authority_start:
        spans.append((authority_start, userinfo_end))
    spans += [email.span() for email in _EMAIL_IN_TEXT.finditer(url, path_start, cut)]
    if cut < len(url):
        spans.append((cut + 1, len(url)))
    return spans


def _holds_email(value: Any) -> bool:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _EMAIL_IN_TEXT.search(text) is not None


def shown_event(event: dict[str, Any], private_fields: Iterable[Sequence[str]]) -> dict[str, Any]:
    """The event as a file people read shows it: `redact_user_data`'s masking, the values at
    `private_fields` (customer information a mapping puts outside user_data), at
    `FREE_TEXT_FIELDS` and of custom_data's custom properties masked too, and the query and
    fragment of its page URLs, where a site may have put an e-mail address (``?email=``) or a
    token, and an e-mail address or a userinfo before them."""
    masked = mask_fields(redact_user_data(event), [*private_fields, *FREE_TEXT_FIELDS])
    return _with_page_urls_shown(_with_custom_properties_masked(masked))


def _with_custom_properties_masked(event: dict[str, Any]) -> dict[str, Any]:
    custom_data = event.get("custom_data")
    if not isinstance(custom_data, dict):
        return event
    shown = _others_masked(custom_data, _CUSTOM_DATA_PARAMETERS)
    contents = shown.get("contents")
    if isinstance(contents, list):
        shown["contents"] = [
            _others_masked(item, _CONTENT_PARAMETERS) if isinstance(item, dict) else item
            for item in contents
        ]
    return {**event, "custom_data": shown}


def _others_masked(values: dict[str, Any], parameters: frozenset[str]) -> dict[str, Any]:
    """The values of these parameters as they are, every other non-null one masked."""
    return {
        key: value if key in parameters or value is None else MASK for key, value in values.items()
    }


def mask_fields(event: dict[str, Any], paths: Iterable[Sequence[str]]) -> dict[str, Any]:
    """The event with the values at these paths (("custom_data", "email")) masked, those it
    has: for fields outside user_data that someone filled with customer information."""
    masked = event
    for path in paths:
        masked = _masked_at(masked, path)
    return masked


def _masked_at(container: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    key, rest = path[0], path[1:]
    if key not in container:
        return container
    value = container[key]
    if value is None:
        return container
    if not rest:
        return {**container, key: MASK}
    if not isinstance(value, dict):
        return container
    return {**container, key: _masked_at(value, rest)}


def field_texts(event: Mapping[str, Any], paths: Iterable[Sequence[str]]) -> Iterator[str]:
    """The values at these paths of the event, as text (a list's items one by one): what
    `mask_fields` masks, for cutting out of text that may quote them."""
    for path in paths:
        value: Any = event
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        yield from _texts([value])


def unhashed_user_data_values(event: Mapping[str, Any]) -> Iterator[str]:
    """The event's user_data values, as text, that `redact_user_data` masks: what a message
    quoting them (an error answer echoing the request) must not carry either."""
    user_data = event.get("user_data")
    if isinstance(user_data, dict):
        yield from _texts(list(user_data.values()), digests=False)


def _texts(values: list[Any], *, digests: bool = True) -> Iterator[str]:
    # lists and objects within them walked with a stack of iterators, not by recursion: a
    # value from a tap may nest them deeper than Python recurses. An object's values each by
    # itself: an answer quoting it writes it as JSON, not as Python's str() shows it.
    stack: list[Iterator[Any]] = [iter(values)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, (list, dict)):
                stack.append(iter(value.values() if isinstance(value, dict) else value))
                break
            if value is not None and (digests or not _is_digest(value)):
                yield value if isinstance(value, str) else str(value)
        else:
            stack.pop()


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        # a list within the list is no value Meta takes: masked whole, not recursed into
        return [MASK if isinstance(item, list) else _mask(item) for item in value]
    return value if _is_digest(value) else MASK


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and is_sha256_hex(value)


def shown_url(url: str) -> str:
    """The URL as it may be shown: its userinfo (`user:password@`), query string and fragment
    masked. Text that is no valid URL is masked the same way, as far as it goes."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(_url_secret_spans(url)):
        if merged and start <= merged[-1][1]:  # a userinfo running into the query
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    shown = url
    # the last span first, so the earlier ones' offsets still hold
    for start, end in reversed(merged):
        shown = shown[:start] + MASK + shown[end:]
    return shown


def urls_shown_in(text: str) -> str:
    """Text with every URL in it (a scheme, "://", up to a space) shown as `shown_url` shows
    one: a text of Graph's quoting a URL keeps its host and path, not its query string."""
    return _URL_IN_TEXT.sub(lambda url: shown_url(url.group()), text)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that `shown_url` masks, to cut out of text quoting the URL (an HTTP
    library's error message, which quotes the query but not the fragment)."""
    return [url[start:end] for start, end in _url_secret_spans(url)]


def _url_secret_spans(url: str) -> list[tuple[int, int]]:
    """Where a URL's userinfo, query and fragment are, as (start, end) offsets in this order,
    those it has and that are not empty; the userinfo may run into the others. Read from the
    text as written, not with urlsplit, which refuses some malformed URLs and drops tabs and
    newlines: a graph_url refused for being malformed is still shown masked.

    The userinfo runs to the URL's last "@", wherever it is: a password may hold "/", "?" or
    "#" unescaped, which would end the host for a URL parser and show the rest of the password
    (or all of it). An "@" in the path or query then hides the host too, which a URL of the
    Graph API has no reason to hold."""
    fragment_mark = url.find("#")
    fragment_start = fragment_mark + 1 if fragment_mark >= 0 else len(url)
    query_mark = url.find("?", 0, fragment_start)
    query_start = query_mark + 1 if query_mark >= 0 else fragment_start
    path_end = query_start - 1 if query_mark >= 0 or fragment_mark >= 0 else len(url)
    scheme_end = url.find("://", 0, path_end)
    # only a scheme's characters come before its "://" (RFC 3986): any other "://" is in a URL
    # without a scheme, and taken for the scheme's it would start the authority after the
    # userinfo and show the password (me:pw@host/a://b, me:pw@host://)
    if scheme_end >= 0 and not _SCHEME_CHARACTERS.fullmatch(url, 0, scheme_end):
        scheme_end = -1
    authority_start = scheme_end + 3 if scheme_end >= 0 else 0
    at = url.rfind("@", authority_start)
    spans = [
        (authority_start, at if at >= 0 else authority_start),
        (query_start, fragment_mark if fragment_mark >= 0 else len(url)),
        (fragment_start, len(url)),
    ]
    return [(start, end) for start, end in spans if end > start]


def is_loopback_host(host: str | None) -> bool:
    """Whether traffic to `host` stays on this machine (localhost, 127.0.0.0/8, ::1); a name
    other than localhost may resolve anywhere."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return False
