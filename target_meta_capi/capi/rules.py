"""Local validation of one Conversions API event against the rules Meta enforces.

Shared by the sandbox (which answers exactly as Graph would) and the target (which
dead-letters an invalid event before it can fail a whole request of up to 1000 events).

Called once per event at high rates, so: no regex compiled per call, no datetime parsing,
no allocation on the happy path beyond the empty result list.

Subcodes. Graph rejects a request with an invalid event as code 100 plus an
``error_subcode`` in the 2804xxx family. Two of them are documented by Meta (see
shared reference): 2804003 "Event Timestamp Too Old" and 2804001 for a malformed fbc.
Meta documents no subcode for the other rules, so the sandbox uses the rest of the
2804xxx family, one number per rule, as in this table:

=====================================  ========  ===========================================
rule                                   subcode   source
=====================================  ========  ===========================================
``fbc_invalid``                        2804001   Meta (malformed fbc)
``fbp_invalid``                        2804002   sandbox assignment
``event_time_too_old``                 2804003   Meta (Event Timestamp Too Old)
``event_time_in_future``               2804004   sandbox assignment
``event_time_invalid``                 2804005   sandbox assignment
``event_name_missing``                 2804006   sandbox assignment
``action_source_invalid``              2804007   sandbox assignment
``website_user_agent_missing``         2804008   sandbox assignment
``website_source_url_invalid``         2804009   sandbox assignment
``user_data_missing_match_key``        2804010   sandbox assignment
``user_data_not_hashed``               2804011   sandbox assignment
``purchase_value_missing``             2804012   sandbox assignment
``purchase_currency_invalid``          2804013   sandbox assignment
``data_processing_options_invalid``    2804014   sandbox assignment
=====================================  ========  ===========================================

Clients must not depend on the exact numbers beyond "code 100, subcode 2804xxx means an
invalid event"; only 2804001 and 2804003 are Meta's own.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, get_args

from ._sha256 import SHA256_HEX_PATTERN
from .currencies import ISO_4217_CODES
from .normalize import HASHED_KEYS, MATCH_KEYS
from .shapes import ActionSource

MAX_EVENTS_PER_REQUEST = 1000
MAX_AGE_SECONDS = 7 * 24 * 3600
PHYSICAL_STORE_MAX_AGE_SECONDS = 62 * 24 * 3600

ACTION_SOURCES: frozenset[str] = frozenset(get_args(ActionSource))

# Meta's standard events (and the pixel's PageView). Names are case-sensitive: any other name,
# `purchase` too, is a custom event, which Meta neither reports nor optimizes for as a standard one.
STANDARD_EVENT_NAMES: frozenset[str] = frozenset(
    {
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "CompleteRegistration",
        "Contact",
        "CustomizeProduct",
        "Donate",
        "FindLocation",
        "InitiateCheckout",
        "Lead",
        "PageView",
        "Purchase",
        "Schedule",
        "Search",
        "StartTrial",
        "SubmitApplication",
        "Subscribe",
        "ViewContent",
    }
)

# Keys Meta requires as SHA-256 hex (a string or a list of them). external_id is a
# customer-information key too, but hashing it is only recommended, so it is not here.
MUST_BE_HASHED_KEYS = HASHED_KEYS - {"external_id"}

# Any one of these (non-empty) satisfies "at least one customer-information parameter".
CUSTOMER_INFORMATION_KEYS = MATCH_KEYS


@dataclass(frozen=True)
class RuleSpec:
    """What the sandbox answers for a broken rule: Graph's subcode and user-facing title."""

    subcode: int
    user_title: str


RULES: dict[str, RuleSpec] = {
    "fbc_invalid": RuleSpec(2804001, "Invalid fbc Parameter"),
    "fbp_invalid": RuleSpec(2804002, "Invalid fbp Parameter"),
    "event_time_too_old": RuleSpec(2804003, "Event Timestamp Too Old"),
    "event_time_in_future": RuleSpec(2804004, "Event Timestamp In The Future"),
    "event_time_invalid": RuleSpec(2804005, "Invalid Event Timestamp"),
    "event_name_missing": RuleSpec(2804006, "Missing Event Name"),
    "action_source_invalid": RuleSpec(2804007, "Invalid Action Source"),
    "website_user_agent_missing": RuleSpec(2804008, "Missing Client User Agent"),
    "website_source_url_invalid": RuleSpec(2804009, "Invalid Event Source URL"),
    "user_data_missing_match_key": RuleSpec(2804010, "Missing Customer Information Parameters"),
    "user_data_not_hashed": RuleSpec(2804011, "Customer Information Not Hashed"),
    "purchase_value_missing": RuleSpec(2804012, "Missing Purchase Value"),
    "purchase_currency_invalid": RuleSpec(2804013, "Invalid Purchase Currency"),
    "data_processing_options_invalid": RuleSpec(2804014, "Invalid Data Processing Options"),
}


@dataclass(frozen=True)
class RuleViolation:
    """One broken rule. ``message`` never contains a raw user_data value; ``subcode`` is the
    one Graph answers it with (RULES)."""

    rule: str
    field: str
    message: str
    subcode: int


# fb.{subdomainIndex}.{creationTimeMs}.{fbclid or random}[.{appendix}]; a segment is any text
# without a dot, whitespace (a newline too) or a control character: a cookie value holds none
_CLICK_COOKIE = re.compile(r"fb\.[0-9]+\.[0-9]+\.[^.\s\x00-\x1f\x7f]+(?:\.[^.\s\x00-\x1f\x7f]+)?")
_HTTP_URL = re.compile(r"https?://[^/?#\s]", re.IGNORECASE)

# what _check_user_data does with a key: one dict lookup per key. A trusted key's value
# comes from the caller's normalizer, which never gives a blank: present is enough.
_HASHED_KEY, _CLICK_COOKIE_KEY, _PLAIN_KEY, _TRUSTED_KEY = 1, 2, 3, 4
_KEY_KINDS: dict[str, int] = {
    **dict.fromkeys(CUSTOMER_INFORMATION_KEYS, _PLAIN_KEY),
    **dict.fromkeys(MUST_BE_HASHED_KEYS, _HASHED_KEY),
    "fbc": _CLICK_COOKIE_KEY,
    "fbp": _CLICK_COOKIE_KEY,
}


# Meta's "baseline requirements for matching" (Graph API v13.0 on): an event is invalid, and
# rejected, when its customer information is only one of these combinations or a subset of
# one. Each key is a bit, each combination a mask: a subset leaves no bit outside a mask.
_BROAD_KEY_BITS: dict[str, int] = {
    key: 1 << bit
    for bit, key in enumerate(
        ("ct", "country", "st", "zp", "ge", "client_user_agent", "db", "fn", "ln")
    )
}
_TOO_BROAD_COMBINATIONS: tuple[int, ...] = tuple(
    sum(_BROAD_KEY_BITS[key] for key in combination)
    for combination in (
        ("ct", "country", "st", "zp", "ge", "client_user_agent"),
        ("db", "client_user_agent"),
        ("fn", "ge"),
        ("ln", "ge"),
    )
)


@lru_cache(maxsize=16)
def _key_kinds_trusting(trusted_hashed_keys: frozenset[str]) -> dict[str, int]:
    """_KEY_KINDS with the trusted hashed keys checked for presence only."""
    return {
        key: _TRUSTED_KEY if kind == _HASHED_KEY and key in trusted_hashed_keys else kind
        for key, kind in _KEY_KINDS.items()
    }


def _violation(rule: str, field: str, message: str) -> RuleViolation:
    return RuleViolation(rule, field, message, RULES[rule].subcode)


def _is_absent(value: Any) -> bool:
    """None, blank text ("" or only whitespace) or a list holding nothing but those: no
    customer information, as normalize_user_data drops it. Anything else is a value,
    possibly a malformed one, which the format checks then report."""
    if value is None:
        return True
    if type(value) is str:
        return not value or value.isspace()
    if type(value) is list or type(value) is tuple:
        for item in value:
            if item is not None and (type(item) is not str or (item and not item.isspace())):
                return False
        return True
    return False


def max_event_age_seconds(action_source: Any) -> int:
    """How old an event of this action_source Meta still takes."""
    return PHYSICAL_STORE_MAX_AGE_SECONDS if action_source == "physical_store" else MAX_AGE_SECONDS


def _check_event_time(
    event: Mapping[str, Any],
    action_source: Any,
    now: float,
    max_age_margin_seconds: int,
    future_tolerance_seconds: int,
) -> RuleViolation | None:
    event_time = event.get("event_time")
    # bool is an int subclass; floats and numeric strings are refused to stay strict
    if type(event_time) is not int:
        return _violation(
            "event_time_invalid", "event_time", "event_time must be an integer Unix timestamp"
        )
    max_age = max_event_age_seconds(action_source)
    if event_time < now - (max_age - max_age_margin_seconds):
        days = max_age // 86400
        return _violation(
            "event_time_too_old",
            "event_time",
            f"event_time is more than {days} days in the past"
            + (
                f" (less a safety margin of {max_age_margin_seconds} s)"
                if max_age_margin_seconds
                else ""
            ),
        )
    if event_time > now + future_tolerance_seconds:
        # how far ahead tells the cause: whole hours are a local time read as UTC, a few
        # minutes a source clock ahead of this one
        return _violation(
            "event_time_in_future",
            "event_time",
            f"event_time is {event_time - math.floor(now)} s in the future, more than the "
            f"{future_tolerance_seconds} s allowed",
        )
    return None


def _check_user_data(
    user_data: Any,
    _kinds: Mapping[str, int] = _KEY_KINDS,
    _is_sha256: Any = SHA256_HEX_PATTERN.fullmatch,
    _is_click_cookie: Any = _CLICK_COOKIE.fullmatch,
) -> list[RuleViolation]:
    # a dict, the common case, skips the ABC check
    if user_data.__class__ is not dict and not isinstance(user_data, Mapping):
        return [
            _violation(
                "user_data_missing_match_key",
                "user_data",
                "user_data must be an object with at least one customer-information parameter",
            )
        ]
    violations: list[RuleViolation] = []
    # a key outside every too-broad combination makes the customer information specific
    # enough; until one is found, broad_keys collects the bits of the broad ones present
    # (neither: no customer information at all)
    specific = False
    broad_keys = 0
    for key, value in user_data.items():
        kind = _kinds.get(key)
        if kind is None or (kind >= _PLAIN_KEY and specific):
            continue  # a plain key only counts as a match key, and a specific one was found
        value_type = type(value)
        # a non-empty string, the common case, skips the call
        if (value_type is not str or not value) and _is_absent(value):
            continue
        if kind >= _PLAIN_KEY:
            # blank text is no customer information; a trusted key is never blank
            if kind == _PLAIN_KEY and value_type is str and value.isspace():
                continue
        elif kind == _HASHED_KEY:
            if value_type is str:
                hashed = _is_sha256(value) is not None
            elif value_type is list or value_type is tuple:
                hashed = True
                for item in value:
                    if type(item) is not str or _is_sha256(item) is None:
                        hashed = False
                        break
            else:
                hashed = False
            if not hashed:
                if _is_absent(value):  # blank: looked for only here, so a hash costs nothing
                    continue
                violations.append(
                    _violation(
                        "user_data_not_hashed",
                        f"user_data.{key}",
                        f"user_data.{key} must be a SHA-256 hex digest or a list of them",
                    )
                )
        elif value_type is not str or _is_click_cookie(value) is None:
            if _is_absent(value):
                continue
            # Meta's parameter builder may append an appendix segment to fbp as well as
            # fbc; refusing it locally would dead-letter events Meta accepts.
            violations.append(
                _violation(
                    f"{key}_invalid",
                    f"user_data.{key}",
                    f"user_data.{key} must look like fb.{{subdomainIndex}}.{{creationTimeMs}}"
                    + (".{fbclid}" if key == "fbc" else ".{random}"),
                )
            )
        bit = _BROAD_KEY_BITS.get(key, 0)
        specific = specific or not bit
        broad_keys |= bit
    if not specific and not broad_keys:
        violations.insert(
            0,
            _violation(
                "user_data_missing_match_key",
                "user_data",
                "user_data needs at least one customer-information parameter",
            ),
        )
    elif not specific and any(
        broad_keys & ~combination == 0 for combination in _TOO_BROAD_COMBINATIONS
    ):
        violations.insert(
            0,
            _violation(
                "user_data_missing_match_key",
                "user_data",
                "user_data holds only customer-information parameters too broad to match (Meta"
                " rejects ct+country+st+zp+ge+client_user_agent, db+client_user_agent, fn+ge,"
                " ln+ge and any part of them): add em, ph, external_id, client_ip_address,"
                " fbp, fbc or another identifier",
            ),
        )
    return violations


# Meta's own example payloads (the Conversions API overview, its app events page, the Payload
# Helper, which finds "no errors" in it) send a Purchase's value as text: "142.52". Only such
# plain decimal text is taken; what else Graph would read as a number is not documented.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _is_purchase_value(value: Any) -> bool:
    if value.__class__ is str:
        return _DECIMAL_TEXT.fullmatch(value) is not None
    if isinstance(value, Decimal):
        # an application's money, a database's NUMERIC: the body holds it as a JSON number.
        # is_finite first: a signalling NaN cannot even be read as a float
        return value.is_finite() and math.isfinite(value)  # not past a float's range
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _check_purchase(custom_data: Any) -> list[RuleViolation]:
    if custom_data.__class__ is not dict and not isinstance(custom_data, Mapping):
        custom_data = {}
    violations: list[RuleViolation] = []
    if not _is_purchase_value(custom_data.get("value")):
        violations.append(
            _violation(
                "purchase_value_missing",
                "custom_data.value",
                "Purchase events need a numeric custom_data.value",
            )
        )
    currency = custom_data.get("currency")
    if not (
        currency.__class__ is str
        # ascii first: "u\u017fd".upper() (a long s) is "USD"
        and (
            currency in ISO_4217_CODES
            or (currency.isascii() and currency.upper() in ISO_4217_CODES)
        )
    ):
        violations.append(
            _violation(
                "purchase_currency_invalid",
                "custom_data.currency",
                "Purchase events need custom_data.currency as a 3-letter ISO 4217 code",
            )
        )
    return violations


# Limited Data Use: data_processing_options is ["LDU"] (on) or [] (explicitly off); country
# and state go together, and Graph takes only these pairs ("Valid combinations are 0 and 0,
# or 1 and 1000": 0 = geolocate, 1 = US with 1000 = California). Neither given is taken as
# geolocation; one of them alone is not a valid combination.
_DATA_PROCESSING_OPTIONS = ((), ("LDU",))
_DATA_PROCESSING_REGIONS = frozenset({(0, 0), (1, 1000)})


def _check_data_processing_options(options: Any, country: Any, state: Any) -> RuleViolation | None:
    if options is not None and not (
        (options.__class__ is list or options.__class__ is tuple)
        and tuple(options) in _DATA_PROCESSING_OPTIONS
    ):
        return _violation(
            "data_processing_options_invalid",
            "data_processing_options",
            'data_processing_options must be ["LDU"] or []',
        )
    if country is None and state is None:
        return None
    # bool is an int subclass: refused, as for event_time
    if (
        country.__class__ is not int
        or state.__class__ is not int
        or (country, state) not in _DATA_PROCESSING_REGIONS
    ):
        return _violation(
            "data_processing_options_invalid",
            "data_processing_options_country",
            "data_processing_options_country and data_processing_options_state are invalid as"
            " a combination: valid combinations are 0 and 0, or 1 and 1000",
        )
    return None


def validate_event(
    event: Mapping[str, Any],
    *,
    now: float | None = None,
    max_age_margin_seconds: int = 0,
    future_tolerance_seconds: int = 60,
    trusted_hashed_keys: frozenset[str] = frozenset(),
) -> list[RuleViolation]:
    """Return every rule ``event`` breaks (empty list: Meta would accept it).

    ``now`` defaults to the current time. ``max_age_margin_seconds`` shortens the allowed
    age so an event still valid now is not too old by the time it reaches Meta (retries,
    backpressure). ``future_tolerance_seconds`` allows for clock skew.
    ``trusted_hashed_keys``: user_data keys whose values the caller produced as SHA-256 hex
    itself (the target's normalizer); they are checked for presence, not re-matched against
    the hex pattern. Everything else, and every call from the sandbox, stays strict.
    """
    if now is None:
        now = time.time()
    violations: list[RuleViolation] = []

    event_name = event.get("event_name")
    if not isinstance(event_name, str) or not event_name.strip():
        violations.append(
            _violation("event_name_missing", "event_name", "event_name must be a non-empty string")
        )

    action_source = event.get("action_source")
    time_violation = _check_event_time(
        event, action_source, now, max_age_margin_seconds, future_tolerance_seconds
    )
    if time_violation is not None:
        violations.append(time_violation)

    user_data = event.get("user_data")
    if not isinstance(action_source, str) or action_source not in ACTION_SOURCES:
        violations.append(
            _violation(
                "action_source_invalid",
                "action_source",
                "action_source must be one of " + ", ".join(sorted(ACTION_SOURCES)),
            )
        )
    elif action_source == "website":
        user_agent = (
            user_data.get("client_user_agent")
            if user_data.__class__ is dict or isinstance(user_data, Mapping)
            else None
        )
        if not isinstance(user_agent, str) or not user_agent.strip():
            violations.append(
                _violation(
                    "website_user_agent_missing",
                    "user_data.client_user_agent",
                    "website events need user_data.client_user_agent",
                )
            )
        source_url = event.get("event_source_url")
        if not isinstance(source_url, str) or _HTTP_URL.match(source_url) is None:
            violations.append(
                _violation(
                    "website_source_url_invalid",
                    "event_source_url",
                    "website events need an http(s) event_source_url",
                )
            )

    if trusted_hashed_keys:
        violations.extend(_check_user_data(user_data, _key_kinds_trusting(trusted_hashed_keys)))
    else:
        violations.extend(_check_user_data(user_data))

    if event_name == "Purchase":
        violations.extend(_check_purchase(event.get("custom_data")))

    options = event.get("data_processing_options")
    country = event.get("data_processing_options_country")
    state = event.get("data_processing_options_state")
    if options is not None or country is not None or state is not None:
        ldu_violation = _check_data_processing_options(options, country, state)
        if ldu_violation is not None:
            violations.append(ldu_violation)
    return violations


# A parameter whose value alone breaks its rule, with the parameters that rule also reads.
_DECIDED_WITH: dict[str, tuple[str, ...]] = {
    "user_data.fbc": (),
    "user_data.fbp": (),
    "data_processing_options": (),
    "data_processing_options_country": ("data_processing_options_state",),
    "custom_data.currency": ("event_name",),
    "event_source_url": ("action_source",),
}


def violations_in_every_event(
    literal: Mapping[str, Any], replaceable: Collection[str] = ()
) -> list[RuleViolation]:
    """The rules that parameters given once for all break in every event they are used in,
    whatever its other parameters are: a mapping's constants, refused before any is sent.

    ``literal`` holds those parameters, nested as in an event and converted as its values
    are; ``replaceable`` names (dotted: ``custom_data.currency``) the ones a record's value
    may replace, which are then used only where the record has none. A rule that also reads
    another parameter counts only when that one is literal and not replaceable: a currency
    of "euro" is refused on every Purchase, so on every event only when each is a Purchase.
    """
    found = []
    for violation in validate_event(literal):
        needs = _DECIDED_WITH.get(violation.field)
        if (
            needs is not None
            and _literal_value(literal, violation.field) is not None
            and all(
                name not in replaceable and _literal_value(literal, name) is not None
                for name in needs
            )
        ):
            found.append(violation)
    return found


def _literal_value(event: Mapping[str, Any], dotted: str) -> Any:
    value: Any = event
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value
