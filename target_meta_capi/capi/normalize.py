"""Meta's normalization of customer information, and SHA-256 hashing.

Rules (see the Conversions API reference, "Customer information parameters"):

========== ======================================================================
key        normalized text (then SHA-256, lowercase hex of the UTF-8 bytes)
========== ======================================================================
em         trimmed, lowercase, NFC; must look like ``local@domain.tld``
ph         digits only, leading zeros dropped; 7 to 15 digits; an extension (``ext 12``,
           ``x12``, ``#12``, ``;ext=12``, ``(ext 12)``, ``extn 12``, digits dialled after a
           pause ``,,12``, ``p12``, ``w12``, ``;12``) and a national prefix written after the
           country code (``+49 030 …``, ``+44 (0) 20 …``; Italy's 0 is part of its numbers)
           left out; a whole number written as a float (``16169547888.0``,
           ``1.6169547888E10``) is that number; with a ``phone_country_code``, a number
           written without ``+`` or ``00`` is read as dialled in that country, by
           libphonenumber's rules (``0844 412 4653`` → ``448444124653`` for 44 or GB,
           ``(616) 954-7888`` → ``16169547888`` for 1 or US), unless it has too many or too
           few digits for a number there but makes a valid one with a country code of its own
           (``4915123456789``, stored without its ``+``); without one, a number written with
           its trunk 0 (``07700 900123``), and a North American number
           written without its 1 (``(616) 954-7888``; one that is also a valid international
           number is kept), are dropped: ``no_country_code``
fn, ln, ct lowercase, NFC, letters/marks/digits only (``O'Brien`` → ``obrien``, ``Zoë`` → ``zoë``)
ge         ``f`` or ``m`` (female/woman/w/f/girl, male/man/m/boy; any case)
db         ``YYYYMMDD`` from date objects, ``1997-02-16``, ``1997/02/16``, ``19970216``,
           ``02/16/1997`` (month first; day first when the first number is above 12),
           ``16.02.1997`` (day first), ISO datetimes; impossible dates, other text after
           the date, birth years before 1900, and dates after today are dropped
st         US state and territory names, abbreviations written with their period
           (``Calif.``, ``W. Va.``) and ISO 3166-2 codes (``US-CA``) → 2-letter code;
           otherwise as ct
zp         US ZIP (``94035``, ``94035-1234``, any dash and spaces around it, ``94035.0``)
           → 5 digits; others lowercase, no spaces/dashes
country    ISO 3166-1 alpha-2, lowercase, from alpha-2, alpha-3, an English name (``The
           Gambia``, ``St Lucia`` too) or a common name in the country's language (``België``)
external_id trimmed, lowercase (hashed unless ``hash_external_id=False``: then only trimmed);
           the text a tool writes for a null (``null``, ``None``, ``nil``, ``NaN``,
           ``undefined``, ``n/a``) is dropped: one id for all such rows would join them
f5first,   the first 5 letters of the first or last name, normalized as fn/ln
f5last
fi         the first initial: the first letter of the first name, normalized as fn
dobd, dobm day and month of birth as 2 digits (``7`` → ``07``; day 1-31, month 1-12)
doby       year of birth as 4 digits, 1900 to this year
========== ======================================================================

Trimmed takes the whitespace and the zero-width characters (zero width space, joiners, word
joiner, byte order mark) at both ends.
Before any of it, the full-width letters, digits and signs an East Asian input method types
(U+FF01 to U+FF5E: a full-width e-mail address, a postcode with a full-width dash) are read as
ASCII, and half-width katakana and Hangul as full-width, as NFKC reads that block.
A string that already is a SHA-256 (64 hex digits) passes through, lowercased, so a hash is
never hashed twice. 32-hex MD5 digests are not hashes for Meta and are treated as raw text.
Integers, and integral floats and Decimals, of up to 64 digits are accepted as text for ph, zp,
db, dobd, dobm, doby and external_id (``94035.0`` is ``94035``; ``94035.5`` is refused). The decimal
digits of other scripts (Arabic-Indic ``٩``, fullwidth …) are read as ASCII digits in ph, zp
and the dates.
Lists are allowed for the hashed keys (a list in, a list out, duplicates removed in order).
The unhashed keys (client_ip_address, client_user_agent, fbc, fbp, ...) pass through untouched;
empty ones, and the empty items of their lists, are left out.

Nothing here raises on bad input: a value that cannot be normalized is left out of the result
and reported as a :class:`DroppedValue` (key and reason, never the value itself).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from target_meta_capi.capi._countries import COUNTRY_ALIASES, ISO_3166_1
from target_meta_capi.capi._sha256 import SHA256_HEX_PATTERN, is_sha256_hex
from target_meta_capi.capi._us_states import US_STATE_ABBREVIATIONS, US_STATE_ALIASES, US_STATES
from target_meta_capi.capi._words import shown_json
from target_meta_capi.capi.errors import ConfigurationError

if TYPE_CHECKING:  # imported where a number is read, the first time only
    from phonenumbers import PhoneNumber

__all__ = [
    "HASHED_KEYS",
    "MATCH_KEYS",
    "REASON_EMPTY",
    "REASON_INVALID",
    "REASON_NO_COUNTRY_CODE",
    "REASON_UNKNOWN_KEY",
    "REASON_UNSUPPORTED_TYPE",
    "SHA256_HEX_PATTERN",
    "UNHASHED_KEYS",
    "DroppedValue",
    "InvalidCountryCode",
    "NormalizedUserData",
    "is_sha256_hex",
    "load_phone_rules",
    "normalize_hashed_values",
    "normalize_user_data",
    "normalize_value",
    "phone_region",
    "sha256_hex",
]

HASHED_KEYS: frozenset[str] = frozenset(
    {"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}
    # the partial names and dates of birth Meta's business SDKs send hashed (UserData's
    # f5first, f5last, fi, dobd, dobm, doby)
    | {"f5first", "f5last", "fi", "dobd", "dobm", "doby"}
)
UNHASHED_KEYS: frozenset[str] = frozenset(
    {
        "client_ip_address",
        "client_user_agent",
        "fbc",
        "fbp",
        "subscription_id",
        "fb_login_id",
        "lead_id",
        "anon_id",
        "madid",
        "page_id",
        "page_scoped_user_id",
        "ctwa_clid",
        "ig_account_id",
        "ig_sid",
    }
)
# Every customer-information key of user_data.
MATCH_KEYS: frozenset[str] = HASHED_KEYS | UNHASHED_KEYS

# Reasons a value is dropped (stable strings: they end up in dead letters and summaries).
REASON_EMPTY = "empty"
REASON_INVALID = "invalid"
REASON_UNSUPPORTED_TYPE = "unsupported_type"
REASON_UNKNOWN_KEY = "unknown_key"
# a phone number written with its trunk 0, or a North American one without its 1, and no
# phone_country_code (_normalize_phone)
REASON_NO_COUNTRY_CODE = "no_country_code"


@dataclass(frozen=True, slots=True)
class DroppedValue:
    """A user_data value left out of the event. Holds no part of the value itself."""

    key: str
    reason: str


@dataclass(slots=True)
class NormalizedUserData:
    user_data: dict[str, Any]
    dropped: list[DroppedValue] = field(default_factory=list)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- per-key normalizers: text in, normalized text or None out ---------------------------------

# What an address cannot hold outside quotes (RFC 5322's specials but the dot, and spaces):
# "<john@example.com>" and "mailto:john@example.com" hashed as they are match no one.
_NOT_IN_EMAIL = r"@\s<>()\[\]\\,;:"
_EMAIL_RE = re.compile(
    rf"[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}.][^{_NOT_IN_EMAIL}]*\.[^{_NOT_IN_EMAIL}.]+"
)
_NON_DIGITS_RE = re.compile(r"\D+")
_ASCII_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
# the hyphen, and the dashes and minus sign a spreadsheet or a word processor puts for it
_DASHES = "\\-\u2010-\u2015\u2212"
_ZIP_SEPARATORS_RE = re.compile(rf"[\s{_DASHES}]+")
# ZIP+4 (94035-1234), and a ZIP a float column wrote (94035.0)
_US_ZIP_RE = re.compile(rf"(\d{{5}})(?:\s*[{_DASHES}]?\s*\d{{4}}|\.0+)?")
_COUNTRY_NAME_PREFIX_RE = re.compile(r"^\s*(the|st\.?)\s+", re.IGNORECASE)
_NULL_TEXTS = frozenset({"null", "none", "nil", "nan", "undefined", "n/a"})
_MIN_PHONE_DIGITS = 7
# A whole number as a float's text gives it (16169547888.0, 1.6169547888E10): a float column
# cast to text, or a CSV pandas wrote. Not a dotted number (616.954.7888): its parts are digits.
_FLOAT_TEXT_RE = re.compile(r"\s*(\d{7,}\.0+|\d\.\d+[eE]\+?\d{1,2})\s*")
# E.164: a number with its country code has at most 15 digits. More are two numbers in one
# value ("+44 7700 900123, +44 7700 900456") or a number and other digits: hashed, no match.
_MAX_PHONE_DIGITS = 15
_DECIMAL_DIGIT_RE = re.compile(r"\d")
# A number followed by its extension ("ext 12", "ext. 12", "extension 12", "x12", "#12", RFC
# 3966's ";ext=12", or digits a phone dials after a pause: "5551234,,12", "5551234p12",
# "5551234;12"): the extension is no part of the number Meta matches, and folded into its
# digits it makes another number. Only after a number written with digits and ( ) + - . / and
# spaces, so a value with other letters is never cut; a pause only right before the digits, so
# "5551234, 5555678" stays two numbers in one value.
_PHONE_EXTENSION_RE = re.compile(
    r"((?:tel:)?[+\d\s().\-/]*\d[\s().\-/]*?)"
    r"(?:(?:;\s*ext\s*=|,?\s*\(?\s*(?:ext(?:ension|n)?\.?|x\.?|#)\s*[:#]?)\s*|,+|[pw;])"
    r"\d+\s*\)?\s*",
    re.IGNORECASE,
)
_PHONE_EXTENSION_MARKERS = frozenset("xX#,;pPwW")
_MAX_PHONE_WITH_EXTENSION = 64  # "+1 (616) 954-7888 extension 12345" is 33
# The E.164 country calling codes of one and two digits; every other is three digits long (the
# codes are a prefix code: no code begins another). tests/test_normalize.py holds it to
# libphonenumber's list.
_ONE_DIGIT_CALLING_CODES = frozenset({"1", "7"})
# fmt: off
_TWO_DIGIT_CALLING_CODES = frozenset({
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
    "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
})
# fmt: on
# A number dialled from abroad: its country code follows.
_INTERNATIONAL_PHONE_RE = re.compile(r"\s*(?:tel:\s*)?(?:\+|00)", re.IGNORECASE)
# E.164 country calling codes: 1 to 3 digits, the first not 0 (a leading + allowed).
_COUNTRY_CALLING_CODE_RE = re.compile(r"\+?([1-9][0-9]{0,2})")
# The shape of a North American number without its 1: area code and exchange begin with 2-9.
_NORTH_AMERICAN_NATIONAL_RE = re.compile(r"[2-9][0-9]{2}[2-9][0-9]{6}")

_GENDERS: dict[str, str] = {
    **dict.fromkeys(("f", "female", "woman", "w", "girl"), "f"),
    **dict.fromkeys(("m", "male", "man", "boy"), "m"),
}


# Whitespace (all that str.strip takes) and the invisible characters copy and paste leaves at
# the ends of a value (zero width space, joiners, word joiner, a byte order mark): no part of
# an address, ZIP or id, and kept they make a hash no one's value has.
_EDGE_CHARACTERS = "".join(
    [char for char in map(chr, range(0x3001)) if char.isspace()]
    + ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
)


def _trim(text: str) -> str:
    return text.strip() if text.isascii() else text.strip(_EDGE_CHARACTERS)


def _letters_only(text: str) -> str:
    """Lowercase, NFC, keep letters, combining marks and digits (any script)."""
    text = unicodedata.normalize("NFC", text).lower()
    if text.isascii():
        return _ASCII_NON_ALNUM_RE.sub("", text)
    category = unicodedata.category
    letters = "".join(char for char in text if category(char)[0] in "LMN")
    # a mark kept apart from its letter by a character just taken out ("Zoe\u00ad\u0308", a
    # soft hyphen) composes with it now: "zoë" as typed, and normalizing it again gives it again
    return unicodedata.normalize("NFC", letters)


def _ascii_digit(match: re.Match[str]) -> str:
    return str(int(match.group()))  # int() reads any Unicode decimal digit


def _ascii_digits(text: str) -> str:
    """The text with every Unicode decimal digit (Arabic-Indic, fullwidth …) as ASCII 0-9.

    The regexes' ``\\d`` and ``\\D`` match the decimal digits of every script: without this a
    phone or ZIP typed in another script's digits keeps them (and its leading zeros), and its
    hash is one Meta can never match. ASCII text, the common case, costs one check.
    """
    if text.isascii():
        return text
    return _DECIMAL_DIGIT_RE.sub(_ascii_digit, text)


def _ascii_key(text: str) -> str:
    """Lookup key for names in tables: accents folded, lowercase, letters and digits only."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _ASCII_NON_ALNUM_RE.sub("", folded.lower())


def _build_country_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for line in ISO_3166_1.splitlines():
        alpha_2, alpha_3, names = line.split(" ", 2)
        lookup[alpha_2.lower()] = alpha_2.lower()
        lookup[alpha_3.lower()] = alpha_2.lower()
        for name in names.split("|"):
            lookup.setdefault(_ascii_key(name), alpha_2.lower())
    for name, alpha_2 in COUNTRY_ALIASES.items():
        lookup.setdefault(_ascii_key(name), alpha_2.lower())
    return lookup


def _build_us_state_lookup() -> dict[str, str]:
    lookup = {_ascii_key(name): code.lower() for code, name in US_STATES.items()}
    lookup.update({_ascii_key(name): code.lower() for name, code in US_STATE_ALIASES.items()})
    # ISO 3166-2's codes, US-CA, as a geocoder or a country-aware form writes them
    lookup.update({"us" + code.lower(): code.lower() for code in US_STATES})
    return lookup


_COUNTRY_BY_KEY = _build_country_lookup()
_US_STATE_BY_NAME = _build_us_state_lookup()
_US_STATE_BY_ABBREVIATION = {
    _ascii_key(abbreviation): code.lower() for abbreviation, code in US_STATE_ABBREVIATIONS.items()
}


def _normalize_email(text: str) -> str | None:
    if not text.isascii():
        # an accent typed as a combining mark ("jose\u0301@…", as macOS may give it) or
        # composed ("josé@…") is one address: UTF-8 addresses and domain names are NFC
        # (RFC 6532, IDNA), as names are here
        text = unicodedata.normalize("NFC", text)
    text = _trim(text).lower()
    return text if _EMAIL_RE.fullmatch(text) else None


NAMES_NO_PHONE_COUNTRY = (
    "names no country with phone numbers: give its calling code, such as 1 (US, Canada), 44 "
    "(UK) or 49 (Germany), or its ISO code (US, GB, DE)"
)


class InvalidCountryCode(ConfigurationError, ValueError):
    """A phone_country_code that names no country with phone numbers. A mistake of the
    caller's settings, not of a value: raised, where bad values are dropped. Also a
    ValueError, so that callers catching that still catch it."""


def phone_region(phone_country_code: Any) -> str:
    """The country (ISO 3166-1 alpha-2, upper case, as libphonenumber names regions) whose
    phone numbers a phone_country_code names: a country calling code (``"1"``, ``"+44"``,
    ``44``: the code's main country) or a country (``"GB"``, ``"GBR"``, ``"United Kingdom"``).

    Raises InvalidCountryCode for anything else (``"0044"``, ``"999"``, ``"Atlantis"``).
    """
    value = phone_country_code
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    region = _region_named(value) if isinstance(value, str) else None
    if region is None:
        raise InvalidCountryCode(
            f"phone_country_code {shown_json(phone_country_code)} {NAMES_NO_PHONE_COUNTRY}"
        )
    return region


def _phone_region_of(
    raw: Mapping[str, Any], phone_country_code: Any, phone_country_from_country: bool
) -> str | None:
    """The country the phone numbers of this user_data written without + or 00 are read in:
    with phone_country_from_country, that of its own ``country`` when it names one with phone
    numbers; else phone_country_code's; None: as written."""
    region = _region_or_none(phone_country_code)
    if not phone_country_from_country:
        return region
    country = raw.get("country")
    if "ph" not in raw or country.__class__ is not str:
        return region
    return _country_region(country) or region


@lru_cache(maxsize=1 << 10)  # a country column's spellings: few, repeated by every record
def _country_region(text: str) -> str | None:
    country = _normalize_country(_without_width_forms(text))
    return _with_phone_numbers(country.upper() if country else None)


def _with_phone_numbers(region: str | None) -> str | None:
    """`region`, if it is a country with phone numbers of its own."""
    if not region:
        return None
    import phonenumbers  # imported by runs that read phones with a country only: ~40 ms

    # "ZZ", a code no country has; "001", a code of no country (+800 freephone); Antarctica
    return region if phonenumbers.country_code_for_region(region) else None


@lru_cache(maxsize=64)  # a setting's few values, given again with every record
def _region_named(text: str) -> str | None:
    region = None
    if calling_code := _COUNTRY_CALLING_CODE_RE.fullmatch(text.strip()):
        import phonenumbers

        region = phonenumbers.region_code_for_country_code(int(calling_code.group(1)))
    elif country := _normalize_country(text):
        region = country.upper()
    return _with_phone_numbers(region)


def load_phone_rules() -> None:
    """Import libphonenumber now, ahead of the first phone number that needs it: processes
    forked after this (the target's record workers) share it, where each would import its
    own (≈ 1 MB, and 0.2 s of CPU over the benchmark's orders)."""
    import phonenumbers  # noqa: F401


def _calling_code_length(digits: str) -> int:
    if digits[:1] in _ONE_DIGIT_CALLING_CODES:
        return 1
    return 2 if digits[:2] in _TWO_DIGIT_CALLING_CODES else 3


def _without_national_prefix(digits: str) -> str:
    """The digits of an international number (country code first) without the national
    prefix written after the country code: the trunk 0 dialled only inside the country
    ("+49 030 …", "+44 (0) 20 …"), which no number Meta holds has. libphonenumber takes it out
    where the country has one, and keeps a 0 that is part of the number (Italy's +39 06 …,
    Côte d'Ivoire's +225 07 …). Only numbers with a 0 after their country code are parsed:
    the others, most, cost no import."""
    code_length = _calling_code_length(digits)
    if digits[code_length : code_length + 1] != "0":
        return digits
    number = _international_number(digits)
    return digits if number is None else _e164_digits(number)  # None: a code no country has


def _international_number(digits: str) -> PhoneNumber | None:
    """libphonenumber's reading of digits written with their country code first; None if
    they are no number."""
    import phonenumbers

    try:
        return phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None


def _e164_digits(number: PhoneNumber) -> str:
    import phonenumbers

    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _normalize_phone(text: str, region: str | None = None) -> str | None:
    text = _ascii_digits(text)
    if (as_float := _FLOAT_TEXT_RE.fullmatch(text)) is not None:
        # a float column cast to text (16169547888.0, 1.6169547888E10): the fraction and the
        # exponent are no digits of the number
        number = Decimal(as_float.group(1))
        if number == number.to_integral_value():
            text = str(int(number))
    # Plain numbers, without any extension marker, skip the regex. A longer text is no phone
    # with an extension, and would cost the regex's backtracking time squared.
    if (
        not _PHONE_EXTENSION_MARKERS.isdisjoint(text)
        and len(text) <= _MAX_PHONE_WITH_EXTENSION
        and (extension := _PHONE_EXTENSION_RE.fullmatch(text))
    ):
        text = extension.group(1)
    international = _INTERNATIONAL_PHONE_RE.match(text) is not None
    if region is not None and not international:
        # as dialled inside `region`: libphonenumber knows each country's national prefix (a
        # trunk 0, Russia's 8, Hungary's 06), the 0 Italy's numbers keep after the code, and
        # whether digits that begin as the country code does carry it (16169547888 in the US)
        # or not (45 12 34 56, a Danish number)
        digits = _dialled_in(text, region)
    else:
        written = _NON_DIGITS_RE.sub("", text)
        digits = written.lstrip("0")
        if international:
            digits = _without_national_prefix(digits)
        elif written[:1] == "0" and written[1:2] != "0" and _is_phone_length(digits):
            # a trunk 0: dialled inside the country, the number has no country code (none
            # begins with 0), and its hash without one would match no one, or a stranger
            # abroad (a German mobile, 01512 3456789 → 15123456789, a number in Texas)
            raise _Rejected(REASON_NO_COUNTRY_CODE)
        elif _is_north_american_without_country_code(digits):
            raise _Rejected(REASON_NO_COUNTRY_CODE)
    return digits if _is_phone_length(digits) else None


def _dialled_in(text: str, region: str) -> str:
    """The E.164 digits of a number dialled inside `region`; "" if it is no number. Digits
    too many or too few for a number there, that make a valid one with a country code of
    their own, are that one: stored without the + (4915123456789 in a US shop's numeric
    column); otherwise they are no number (07700 900123 in a US shop: the setting's code in
    front would make a hash matching no one). Not one only invalid there ((679) 203-3649,
    no US area code), which is no evidence of a country code: read as Fiji's, it might be a
    stranger's."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        written = _NON_DIGITS_RE.sub("", text)
        international = None if written[:1] == "0" else _international_number(written)
        if international is not None and phonenumbers.is_valid_number(international):
            return written
        return ""  # a number neither there nor with a country code of its own
    return _e164_digits(number)


def _is_north_american_without_country_code(digits: str) -> bool:
    """Whether 10 digits are a number of the US, Canada or the Caribbean stored without its 1
    (``(616) 954-7888``), by libphonenumber's ranges: valid there, and valid as no
    international number. One valid both ways (``609 264 1051``: New Jersey, or Malaysia's
    +60 9264 1051 stored without its +) is kept as written: it may have its country code."""
    if not _NORTH_AMERICAN_NATIONAL_RE.fullmatch(digits):
        return False
    import phonenumbers

    if not phonenumbers.is_valid_number(phonenumbers.parse(digits, "US")):
        return False  # a range not in libphonenumber's data, or no number: as written
    try:
        international = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:  # it begins with a code no country has
        return True
    return not phonenumbers.is_valid_number(international)


def _is_phone_length(digits: str) -> bool:
    return _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS


def _normalize_letters(text: str) -> str | None:
    return _letters_only(text) or None


def _normalize_gender(text: str) -> str | None:
    return _GENDERS.get(_trim(text).lower())


def _normalize_state(text: str) -> str | None:
    letters = _letters_only(text)
    if len(letters) <= 2:
        return letters or None
    # looked up as the table's names are written, in ASCII: "Hawai\u02bbi" (the okina is a
    # letter, kept) is hi
    name = letters if letters.isascii() else _ascii_key(letters)
    if name in _US_STATE_BY_NAME:
        return _US_STATE_BY_NAME[name]
    if text.rstrip().endswith("."):
        return _US_STATE_BY_ABBREVIATION.get(name, letters)
    return letters


def _normalize_zip(text: str) -> str | None:
    text = _ascii_digits(_trim(text).lower())
    us_zip = _US_ZIP_RE.fullmatch(text)
    if us_zip:
        return us_zip.group(1)
    return _ZIP_SEPARATORS_RE.sub("", text) or None


def _normalize_country(text: str) -> str | None:
    code = _COUNTRY_BY_KEY.get(_ascii_key(text))
    if code is None and (prefix := _COUNTRY_NAME_PREFIX_RE.match(text)):
        # ISO writes "Gambia" and "Saint Lucia": not "The Gambia" nor "St. Lucia"
        spelled_out = "" if prefix.group(1).lower() == "the" else "saint"
        code = _COUNTRY_BY_KEY.get(_ascii_key(spelled_out + text[prefix.end() :]))
    return code


def _normalize_external_id(text: str) -> str | None:
    normalized = _trim(text).lower()
    # a null a tool wrote out as text: every such row would get one id, as if one customer
    return None if normalized in _NULL_TEXTS else normalized or None


def _normalize_first_five_letters(text: str) -> str | None:
    return _letters_only(text)[:5] or None


def _normalize_first_initial(text: str) -> str | None:
    return _letters_only(text)[:1] or None


_BIRTH_PART_RE = re.compile(r"\d{1,2}")
_BIRTH_YEAR_RE = re.compile(r"\d{4}")


def _birth_part(text: str, highest: int) -> str | None:
    """A day (1-31) or month (1-12) of birth as 2 digits."""
    text = _ascii_digits(_trim(text))
    if not _BIRTH_PART_RE.fullmatch(text) or not 1 <= int(text) <= highest:
        return None
    return f"{int(text):02d}"


def _normalize_birth_day(text: str) -> str | None:
    return _birth_part(text, 31)


def _normalize_birth_month(text: str) -> str | None:
    return _birth_part(text, 12)


def _normalize_birth_year(text: str) -> str | None:
    text = _ascii_digits(_trim(text))
    if not _BIRTH_YEAR_RE.fullmatch(text):
        return None
    return text if _MIN_BIRTH_YEAR <= int(text) <= dt.date.today().year else None


# An ISO date, or an ISO datetime (a time and a UTC offset or Z, as databases and isoformat()
# write them): only a time may follow the date, not any text ("1997-02-16 maybe").
_ISO_DATE_RE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?"
    r"\s*(?:Z|UTC|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?)?",
    re.IGNORECASE,
)
_YEAR_FIRST_RE = re.compile(r"(\d{4})([/.])(\d{1,2})\2(\d{1,2})")
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_YEAR_LAST_RE = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})")


# Birth years Meta can match: one before 1900 is a placeholder or a typo (0001-01-01,
# 1800-01-01), one after this year is not yet a birth; hashed they could only miss. Also keeps
# YYYY four digits.
_MIN_BIRTH_YEAR = 1900
# a date after today is not yet a birth either; a day's margin, as it is already tomorrow east
# of here
_BIRTH_DATE_MARGIN = dt.timedelta(days=1)


def _birth_date(date: dt.date) -> str | None:
    """YYYYMMDD of a plausible date of birth, else None."""
    day = date.date() if isinstance(date, dt.datetime) else date  # a datetime is a date too
    if day.year < _MIN_BIRTH_YEAR or day > dt.date.today() + _BIRTH_DATE_MARGIN:
        return None
    # not strftime: its %Y is not zero-padded everywhere (glibc writes year 1 as "1")
    return f"{date.year:04d}{date.month:02d}{date.day:02d}"


def _valid_date(year: str, month: str, day: str) -> str | None:
    try:
        return _birth_date(dt.date(int(year), int(month), int(day)))
    except ValueError:
        return None


def _normalize_date_text(text: str) -> str | None:
    text = _ascii_digits(_trim(text))
    if match := _COMPACT_DATE_RE.fullmatch(text):
        return _valid_date(*match.groups())
    if match := _ISO_DATE_RE.fullmatch(text):
        return _valid_date(*match.groups())
    if match := _YEAR_FIRST_RE.fullmatch(text):
        year, _, month, day = match.groups()
        return _valid_date(year, month, day)
    if match := _YEAR_LAST_RE.fullmatch(text):
        first, separator, second, year = match.groups()
        if separator == ".":  # dotted dates are written day first (16.02.1997)
            return _valid_date(year, second, first)
        # US order (02/16/1997) unless the first number cannot be a month (16/02/1997)
        return _valid_date(year, first, second) or _valid_date(year, second, first)
    return None


_NORMALIZERS: dict[str, Callable[[str], str | None]] = {
    "em": _normalize_email,
    "ph": _normalize_phone,
    "fn": _normalize_letters,
    "ln": _normalize_letters,
    "ct": _normalize_letters,
    "ge": _normalize_gender,
    "db": _normalize_date_text,
    "st": _normalize_state,
    "zp": _normalize_zip,
    "country": _normalize_country,
    "external_id": _normalize_external_id,
    "f5first": _normalize_first_five_letters,
    "f5last": _normalize_first_five_letters,
    "fi": _normalize_first_initial,
    "dobd": _normalize_birth_day,
    "dobm": _normalize_birth_month,
    "doby": _normalize_birth_year,
}
# Keys whose values are often stored as numbers (phone, zip and id columns, 19970216).
_NUMBER_KEYS = frozenset({"ph", "zp", "db", "dobd", "dobm", "doby", "external_id"})
_MAX_EXACT_FLOAT = 2.0**53  # every integer up to it is exactly a float
# More digits than any phone (15), ZIP, date or database id (a 128-bit one has 39). A JSON
# number like 1e5000 arrives as a Decimal: as text, Python refuses its 5001 digits (ValueError),
# and the digits of 1e9999999 take hours to compute, so a longer number is refused before.
_MAX_NUMBER_DIGITS = 64
_FIRST_NUMBER_TOO_LONG = 10**_MAX_NUMBER_DIGITS


# Half of a UTF-16 pair, alone (a str from surrogateescape decoding, or from a JavaScript
# string cut in two): no UTF-8 text holds it, so it can be neither hashed nor sent.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


# The Halfwidth and Fullwidth Forms block: Latin letters, digits and signs typed in an East
# Asian input method's full-width mode (an e-mail address, "@" and "." included), and
# half-width katakana and Hangul.
# Their hash is one no one's value has. Only this block is folded (NFKC, one character at a
# time): NFKC on the whole text would also decompose Thai's and Lao's SARA AM.
_WIDTH_FORM_RE = re.compile("[\uff01-\uffee]")


def _without_width_forms(text: str) -> str:
    if text.isascii() or not _WIDTH_FORM_RE.search(text):
        return text
    folded = _WIDTH_FORM_RE.sub(lambda form: unicodedata.normalize("NFKC", form.group()), text)
    # a half-width voiced mark became a combining one: it joins its kana (TA and the mark are DA)
    return unicodedata.normalize("NFC", folded)


def _text_to_normalize(key: str, value: Any) -> str:
    """The value as text to normalize, full-width forms folded; raises _Rejected as
    _as_text does. (An external_id sent unhashed is sent as given: not through here.)"""
    return _without_width_forms(_as_text(key, value))


def _as_text(key: str, value: Any) -> str:
    """The value as text to normalize; raises _Rejected for empty or unusable values."""
    if isinstance(value, str):
        if not _trim(value):
            raise _Rejected(REASON_EMPTY)
        if not value.isascii() and _SURROGATE_RE.search(value):
            raise _Rejected(REASON_INVALID)
        return value
    if value is None:
        raise _Rejected(REASON_EMPTY)
    if key == "db" and isinstance(value, dt.date):  # datetime is a date subclass
        # zero-padded (strftime's %Y is not, on glibc): read back as the same date
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if key in _NUMBER_KEYS and not isinstance(value, bool):
        if isinstance(value, int):
            if abs(value) >= _FIRST_NUMBER_TOO_LONG:
                raise _Rejected(REASON_INVALID)
            return str(value)
        # CSV readers and pandas give integer columns as floats (94035.0, a column with a
        # gap). Only up to 2**53: beyond it a float may be a neighbour of the source's integer.
        if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_EXACT_FLOAT:
            return str(int(value))
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            if value and value.adjusted() >= _MAX_NUMBER_DIGITS:
                raise _Rejected(REASON_INVALID)
            return str(int(value))
    raise _Rejected(REASON_UNSUPPORTED_TYPE)


def normalize_value(key: str, value: Any, *, phone_country_code: Any = None) -> str | None:
    """Normalized (unhashed) text of one raw value of a hashed key, or None if unusable.

    Does not recognise hashes: give it raw values. Raises KeyError for a key that is not hashed,
    InvalidCountryCode for a ``phone_country_code`` that is none (see normalize_user_data).
    """
    normalizer = _normalizer(key, _region_or_none(phone_country_code))
    try:
        return normalizer(_text_to_normalize(key, value))
    except _Rejected:
        return None


def _region_or_none(phone_country_code: Any) -> str | None:
    return None if phone_country_code is None else phone_region(phone_country_code)


def _normalizer(key: str, region: str | None) -> Callable[[str], str | None]:
    if key == "ph" and region is not None:
        return partial(_normalize_phone, region=region)
    return _NORMALIZERS[key]


@lru_cache(maxsize=1 << 12, typed=True)
def _hash_value(key: str, value: Any, region: str | None = None) -> tuple[str | None, str]:
    """(hash, "") or (None, reason). Memoized: the same emails, cities and states repeat."""
    if key == "db" and isinstance(value, dt.date):
        # what _as_text's text of it, read back by _normalize_date_text, comes to
        birth_date = _birth_date(value)
        return (sha256_hex(birth_date), "") if birth_date else (None, REASON_INVALID)
    try:
        text = _text_to_normalize(key, value)
        stripped = _trim(text)
        # only a text can be a hash: the 64 digits of a number are an id, to hash
        if (
            isinstance(value, str)
            and len(stripped) == 64
            and SHA256_HEX_PATTERN.fullmatch(stripped)
        ):
            return stripped.lower(), ""
        normalized = _normalizer(key, region)(text)
    except _Rejected as rejected:
        return None, rejected.reason
    if normalized is None:
        return None, REASON_INVALID
    return sha256_hex(normalized), ""


def _plain_external_id(key: str, value: Any) -> tuple[str | None, str]:
    try:
        text = _trim(_as_text(key, value))
    except _Rejected as rejected:
        return None, rejected.reason
    if text.lower() in _NULL_TEXTS:
        return None, REASON_INVALID
    return text, ""


def _hash_or_reject(key: str, value: Any, region: str | None = None) -> tuple[str | None, str]:
    if value.__class__ is dt.datetime:
        # not memoized: aware datetimes of one instant are equal at any offset, and may fall
        # on different days (a date of birth at 23:00-05:00 is not one at 04:00Z)
        return _hash_value.__wrapped__(key, value, region)
    try:
        return _hash_value(key, value, region)
    except TypeError:  # unhashable (dict, set …): lru_cache cannot take it
        return None, REASON_UNSUPPORTED_TYPE


def _is_unhashed_value(value: Any) -> bool:
    """Text, or a number (lead_id, page_id …): what an unhashed key sends as it is. Not an
    object, a set, bytes (JSON would carry them as base64), a date or True, whose JSON is no
    IP address, user agent or id."""
    return value.__class__ is str or (
        isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool)
    )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def normalize_user_data(
    raw: Mapping[str, Any],
    *,
    hash_external_id: bool = True,
    phone_country_code: Any = None,
    phone_country_from_country: bool = False,
) -> NormalizedUserData:
    """Normalize and hash every hashed key of a user_data mapping; never raises on bad values.

    Hashed keys come back as a hex string (or a list of them for a list in); unhashed keys are
    passed through untouched when text or a number (other values are dropped as
    unsupported_type); unknown keys are dropped (they might carry raw PII).
    ``phone_country_code`` (``"1"``, ``"+44"``, ``49``, ``"GB"``): the country of phone numbers
    written without ``+`` or ``00``, whose hash matches no one without its country code
    (Meta's rule); see phone_region. Raises InvalidCountryCode for one that names no country:
    a setting, not a value. ``phone_country_from_country``: such a number is read in the
    country the user_data's own ``country`` names (a code or a name), when it names one, and
    in ``phone_country_code``'s otherwise.
    """
    region = _phone_region_of(raw, phone_country_code, phone_country_from_country)
    # A customer's hashed keys (em, ph, fn … zp) repeat together from order to order: their
    # text values are normalized as one group, memoized; the rest (ip, user agent, fbc …
    # which change per event, or values of other types) goes through key by key.
    identity: list[tuple[str, str]] = []
    rest: dict[str, Any] = {}
    for key, value in raw.items():
        if key in HASHED_KEYS and value.__class__ is str:
            identity.append((key, value))
        else:
            rest[key] = value
    if len(identity) < 2:
        return _normalize_each(raw, hash_external_id, region)
    user_data, dropped = _normalize_identity(tuple(identity), hash_external_id, region)
    normalized = _normalize_each(rest, hash_external_id, region)
    normalized.user_data = {**user_data, **normalized.user_data}
    normalized.dropped[:0] = dropped
    return normalized


def normalize_hashed_values(
    raw: Mapping[str, Any],
    *,
    hash_external_id: bool = True,
    phone_country_code: Any = None,
    phone_country_from_country: bool = False,
) -> NormalizedUserData:
    """normalize_user_data of single values of hashed keys, with no memo of the group.

    For a caller that memoizes each customer itself (the mapping's customer memo): the same
    user_data in the same order and the same dropped values, in fewer steps, and a group
    not held twice.
    """
    region = _phone_region_of(raw, phone_country_code, phone_country_from_country)
    texts = [item for item in raw.items() if item[1].__class__ is str]
    if 2 <= len(texts) < len(raw):  # normalize_user_data's order: its group of texts first
        raw = dict(texts + [item for item in raw.items() if item[1].__class__ is not str])
    return _normalize_each(raw, hash_external_id, region)


@lru_cache(maxsize=1 << 13)  # ~1.5 KB per customer: at most ~12 MB
def _normalize_identity(
    identity: tuple[tuple[str, str], ...], hash_external_id: bool, region: str | None
) -> tuple[dict[str, Any], tuple[DroppedValue, ...]]:
    normalized = _normalize_each(dict(identity), hash_external_id, region)
    return normalized.user_data, tuple(normalized.dropped)


def _normalize_each(
    raw: Mapping[str, Any], hash_external_id: bool, region: str | None
) -> NormalizedUserData:
    user_data: dict[str, Any] = {}
    dropped: list[DroppedValue] = []
    for key, value in raw.items():
        if key in HASHED_KEYS:
            convert: Callable[[str, Any], tuple[str | None, str]] = _hash_or_reject
            if key == "external_id" and not hash_external_id:
                convert = _plain_external_id
            elif key == "ph" and region is not None:
                convert = partial(_hash_or_reject, region=region)
            if isinstance(value, (list, tuple)):
                if not value:
                    dropped.append(DroppedValue(key, REASON_EMPTY))
                    continue
                results: dict[str, None] = {}
                for item in value:
                    result, reason = convert(key, item)
                    if result is None:
                        dropped.append(DroppedValue(key, reason))
                    else:
                        results[result] = None
                if results:
                    user_data[key] = list(results)
            else:
                result, reason = convert(key, value)
                if result is None:
                    dropped.append(DroppedValue(key, reason))
                else:
                    user_data[key] = result
        elif key in UNHASHED_KEYS:
            # Meta takes one value for these keys (lists only for the hashed ones): a request
            # holding a list or an object here fails whole.
            if isinstance(value, (list, tuple)):
                # Empty items are left out and counted, one by one as for the hashed keys:
                # an empty user agent or IP matches no one, and is no value to send.
                items = [item for item in value if not _is_empty(item)]
                dropped.extend([DroppedValue(key, REASON_EMPTY)] * (len(value) - len(items)))
                if len(items) == 1 and _is_unhashed_value(items[0]):
                    user_data[key] = items[0]
                elif items:
                    dropped.append(DroppedValue(key, REASON_UNSUPPORTED_TYPE))
                elif not value:
                    dropped.append(DroppedValue(key, REASON_EMPTY))
            elif _is_empty(value):
                dropped.append(DroppedValue(key, REASON_EMPTY))
            elif _is_unhashed_value(value):
                user_data[key] = value
            else:
                dropped.append(DroppedValue(key, REASON_UNSUPPORTED_TYPE))
        else:
            dropped.append(DroppedValue(key, REASON_UNKNOWN_KEY))
    return NormalizedUserData(user_data, dropped)
