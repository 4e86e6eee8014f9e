import datetime as dt
import hashlib
import time
from decimal import Decimal

import phonenumbers
import pytest

from target_meta_capi.capi.errors import CapiError, ConfigurationError
from target_meta_capi.capi.normalize import (
    HASHED_KEYS,
    MATCH_KEYS,
    UNHASHED_KEYS,
    DroppedValue,
    InvalidCountryCode,
    _calling_code_length,
    is_sha256_hex,
    normalize_hashed_values,
    normalize_user_data,
    normalize_value,
    phone_region,
    sha256_hex,
)

MARY_SHA256 = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
US_SHA256 = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_sha256_hex_matches_metas_documented_hashes():
    assert sha256_hex("mary") == MARY_SHA256
    assert sha256_hex("us") == US_SHA256


def test_first_name_mary_hashes_to_metas_documented_hash():
    assert normalize_user_data({"fn": "Mary"}).user_data == {"fn": MARY_SHA256}


def test_country_us_hashes_to_metas_documented_hash():
    assert normalize_user_data({"country": "US"}).user_data == {"country": US_SHA256}


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [
        ("em", " John_Smith@Gmail.com ", "john_smith@gmail.com"),
        ("ph", "+1 (616) 954-7888", "16169547888"),
        ("ph", "+44 844 412 4653", "448444124653"),
        ("fn", "Mary", "mary"),
        ("ln", "Mary", "mary"),
        ("ge", "Female", "f"),
        ("db", "1997-02-16", "19970216"),
        ("ct", "Menlo Park", "menlopark"),
        ("st", "California", "ca"),
        ("zp", "94035-1234", "94035"),
        ("country", "US", "us"),
        ("external_id", " Cust-42 ", "cust-42"),
    ],
)
def test_reference_table_examples_normalize_as_documented(key, raw, normalized):
    assert normalize_value(key, raw) == normalized
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


def test_every_hashed_key_has_a_normalizer():
    for key in HASHED_KEYS:
        normalize_value(key, "x")  # raises KeyError for a key without normalizer


def test_match_keys_are_hashed_and_unhashed_keys():
    assert MATCH_KEYS == HASHED_KEYS | UNHASHED_KEYS
    assert not HASHED_KEYS & UNHASHED_KEYS
    assert {"em", "external_id", "client_ip_address", "fbc", "ig_sid"} <= MATCH_KEYS


@pytest.mark.parametrize(
    "raw",
    [
        "a@b",
        "john.smith",
        "@gmail.com",
        "john@.com",
        "jo hn@gmail.com",
        "a@b@c.com",
        "<john@example.com>",
        "mailto:john@example.com",
        "john@example.com;",
    ],
)
def test_email_that_does_not_look_like_an_email_is_dropped(raw):
    result = normalize_user_data({"em": raw})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("em", "invalid")]


def test_email_with_an_accent_typed_as_a_combining_mark_hashes_as_the_composed_one():
    composed = normalize_user_data({"em": "Jos\u00e9@B\u00fccher.de"}).user_data
    decomposed = normalize_user_data({"em": "Jose\u0301@Bu\u0308cher.de"}).user_data
    assert decomposed == composed == {"em": sha("jos\u00e9@b\u00fccher.de")}


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [
        ("em", "\u200bJohn@Example.com\ufeff", "john@example.com"),
        ("em", " \u200b john@example.com\u2060\u00a0", "john@example.com"),
        ("zp", "94035\u200b", "94035"),
        ("zp", "\ufeffSW1A 1AA\u200d", "sw1a1aa"),
        ("external_id", "\ufeffCust-42\u200c", "cust-42"),
    ],
)
def test_invisible_characters_at_the_ends_of_a_value_are_trimmed_like_spaces(key, raw, normalized):
    assert normalize_value(key, raw) == normalized
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


def test_external_id_sent_plain_is_trimmed_of_invisible_characters_too():
    result = normalize_user_data({"external_id": "\u200bCust-42\ufeff"}, hash_external_id=False)
    assert result.user_data == {"external_id": "Cust-42"}


def test_value_of_only_invisible_characters_is_dropped_as_empty():
    assert normalize_user_data({"em": "\u200b\ufeff "}).dropped == [DroppedValue("em", "empty")]


def test_phone_leading_double_zero_before_country_code_is_dropped():
    assert normalize_value("ph", "0044 844 412 4653") == "448444124653"


@pytest.mark.parametrize(
    "raw",
    ["07700 900123", "(020) 7946 0958", "tel:0844 412 4653", "۰۹۱۲۳۴۵۶۷۸۹", "0 20 7946 0958"],
)
def test_phone_written_with_a_trunk_zero_without_a_phone_country_code_is_dropped(raw):
    assert normalize_value("ph", raw) is None
    normalized = normalize_user_data({"ph": raw, "em": "mary@example.com"})
    assert normalized.dropped == [DroppedValue("ph", "no_country_code")]
    assert list(normalized.user_data) == ["em"]


@pytest.mark.parametrize(
    "raw", ["(616) 954-7888", "616-954-7888", "616.954.7888", "6169547888", 6169547888]
)
def test_us_number_written_without_its_1_and_no_phone_country_code_is_dropped(raw):
    assert normalize_value("ph", raw) is None
    normalized = normalize_user_data({"ph": raw, "em": "mary@example.com"})
    assert normalized.dropped == [DroppedValue("ph", "no_country_code")]
    assert list(normalized.user_data) == ["em"]


def test_canadian_number_written_without_its_1_is_dropped_as_a_us_one_is():
    assert normalize_user_data({"ph": "(416) 555-0123"}).dropped == [
        DroppedValue("ph", "no_country_code")
    ]


def test_ten_digits_valid_in_north_america_and_abroad_are_hashed_as_written():
    # New Jersey's 609 264 1051, or Malaysia's +60 9264 1051 stored without its +
    assert phonenumbers.is_valid_number(phonenumbers.parse("+6092641051"))
    assert normalize_value("ph", "609 264 1051") == "6092641051"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("(211) 555-0101", "211 is a service code, no area code"),
        ("123 456 7890", "no area code begins with 1"),
        ("616 054 7888", "no exchange begins with 0"),
        ("4930 1234567", "Berlin's number stored without its +: 11 digits"),
    ],
)
def test_digits_that_are_no_north_american_number_are_hashed_as_written(raw, why):
    assert normalize_value("ph", raw) == "".join(c for c in raw if c.isdigit()), why


def test_phone_too_short_to_be_a_number_is_invalid_whatever_it_begins_with():
    assert normalize_user_data({"ph": "0123 45"}).dropped == [DroppedValue("ph", "invalid")]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧", "966501234567"),  # noqa: RUF001 (Arabic-Indic)
        ("+۹۸ ۹۱۲ ۳۴۵ ۶۷۸۹", "989123456789"),  # Persian
        ("００９８ ９１２ ３４５ ６７８９", "989123456789"),  # noqa: RUF001 (fullwidth, 00 dropped)
        ("+९१ ९८७६५ ४३२१०", "919876543210"),  # Devanagari
    ],
)
def test_phone_digits_of_other_scripts_are_hashed_as_ascii_digits(raw, normalized):
    assert normalize_value("ph", raw) == normalized
    assert normalize_user_data({"ph": raw}).user_data == {"ph": sha(normalized)}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("1-616-954-7888 ext 123", "16169547888"),
        ("1-616-954-7888 ext. 123", "16169547888"),
        ("1-616-954-7888 Extension 123", "16169547888"),
        ("1-616-954-7888x123", "16169547888"),
        ("1 (616) 954-7888 #123", "16169547888"),
        ("+1 616 954 7888;ext=5", "16169547888"),
        ("tel:+1-616-954-7888;ext=5", "16169547888"),
        ("+1 616 954 7888, ext: 12", "16169547888"),
        ("+1 616 954 7888,,12", "16169547888"),  # dial strings: digits after a pause
        ("1-616-954-7888p12", "16169547888"),
        ("1-616-954-7888W12", "16169547888"),
        ("+1 616 954 7888;12", "16169547888"),
        ("+1 616 954 7888 (ext 12)", "16169547888"),
        ("+1 616 954 7888 x.12", "16169547888"),
        ("+1 616 954 7888 ext #12", "16169547888"),
        ("+44 20 7946 0958 extn 2", "442079460958"),
    ],
)
def test_phone_extension_is_left_out_of_the_number(raw, normalized):
    assert normalize_value("ph", raw) == normalized
    assert normalize_user_data({"ph": raw}).user_data == {"ph": sha(normalized)}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+44 (0) 20 7946 0958", "442079460958"),
        ("0044(0)2079460958", "442079460958"),
        ("+49 (0)30 1234567", "49301234567"),
        ("+44 (0) 20 7946 0958 ext 12", "442079460958"),
        ("+49 030 1234567", "49301234567"),
        ("+44 07700 900123", "447700900123"),
        ("0033 06 12 34 56 78", "33612345678"),
        ("+353 087 123 4567", "353871234567"),
    ],
)
def test_trunk_zero_written_after_the_country_code_is_left_out(raw, normalized):
    assert normalize_value("ph", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+39 (0)6 6982 1234", "390669821234"),  # Italy
        ("+225 07 12 34 56 78", "2250712345678"),  # Côte d'Ivoire
        ("+242 06 123 4567", "242061234567"),  # Congo
    ],
)
def test_zero_after_the_country_code_that_is_part_of_the_number_is_kept(raw, normalized):
    assert normalize_value("ph", raw) == normalized


def test_every_country_calling_code_is_read_at_its_own_length():
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    lengths = {code: _calling_code_length(f"{code}0123456") for code in codes}
    assert lengths == {code: len(str(code)) for code in codes}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+1 (616) 954-7888", "16169547888"),
        ("1.616.954.7888", "16169547888"),
        ("+39 06 6982 1234", "390669821234"),  # Italy: this 0 is part of the number
        ("+39 (06) 6982 1234", "390669821234"),  # a bracketed area code, not a lone (0)
        ("+1 616 954 7888 x", "16169547888"),  # a marker without digits is no extension
        # two numbers, a space after the comma: no dial pause, so neither is cut off
        ("954-7888, 954-7889", "95478889547889"),
    ],
)
def test_phone_without_extension_or_trunk_zero_keeps_all_its_digits(raw, normalized):
    assert normalize_value("ph", raw) == normalized


def test_long_text_given_as_phone_is_dropped_without_regex_backtracking():
    started = time.perf_counter()
    # before the length limit: ~4 s of backtracking in the extension regex
    assert normalize_value("ph", "1" + " " * 20_000 + "x") is None
    assert time.perf_counter() - started < 0.5


def test_phone_with_fewer_than_seven_digits_is_dropped():
    assert normalize_user_data({"ph": "12-34-56"}).dropped == [DroppedValue("ph", "invalid")]


def test_two_phone_numbers_in_one_value_are_dropped_not_hashed_as_one():
    result = normalize_user_data({"ph": "+44 7700 900123, +44 7700 900456"})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("ph", "invalid")]


def test_phone_of_fifteen_digits_the_most_e164_allows_is_kept():
    assert normalize_value("ph", "+49 1234 567890123") == "491234567890123"


def test_phone_with_exactly_seven_digits_is_kept():
    assert normalize_user_data({"ph": "954-7888"}).user_data == {"ph": sha("9547888")}


def test_phone_extension_marked_with_uppercase_x_is_left_out_of_the_number():
    assert normalize_value("ph", "1-616-954-7888 X123") == "16169547888"


def full_width(text: str) -> str:
    """The text as an East Asian input method's full-width mode types it (U+FF01 to U+FF5E)."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


@pytest.mark.parametrize(
    ("key", "typed", "normalized"),
    [
        ("em", "taro@example.com", "taro@example.com"),
        ("fn", "Taro", "taro"),
        ("ct", "Tokyo", "tokyo"),
        ("zp", "100-0001", "1000001"),
        ("db", "1997/02/16", "19970216"),
        ("external_id", "CUST-42", "cust-42"),
    ],
)
def test_full_width_letters_digits_and_signs_are_read_as_ascii(key, typed, normalized):
    assert normalize_value(key, full_width(typed)) == normalized
    assert normalize_user_data({key: full_width(typed)}).user_data == {key: sha(normalized)}


def test_half_width_katakana_are_read_as_full_width_with_their_voiced_marks():
    half_width_yamada = "\uff94\uff8f\uff80\uff9e"  # YA MA TA, then the voiced mark
    assert normalize_value("ln", half_width_yamada) == "\u30e4\u30de\u30c0"  # YA MA DA


def test_thai_and_lao_names_keep_the_vowel_nfkc_would_decompose():
    # SARA AM (U+0E33) and Lao's AM (U+0EB3): NFKC splits each into two characters
    assert normalize_value("fn", "สำราญ") == "สำราญ"
    assert normalize_value("ln", "ຄຳ") == "ຄຳ"


def test_an_external_id_sent_unhashed_keeps_its_full_width_forms():
    result = normalize_user_data({"external_id": full_width("CUST-42")}, hash_external_id=False)
    assert result.user_data == {"external_id": full_width("CUST-42")}


def test_phone_given_as_int_is_accepted():
    assert normalize_value("ph", 16169547888) == "16169547888"


@pytest.mark.parametrize(
    "raw", ["(616) 954-7888", "616-954-7888", "616.954.7888", "6169547888", 6169547888]
)
def test_phone_without_a_country_code_gets_the_phone_country_code(raw):
    assert normalize_value("ph", raw, phone_country_code="1") == "16169547888"


@pytest.mark.parametrize("raw", ["1-616-954-7888", "1 (616) 954-7888", "16169547888"])
def test_phone_beginning_with_the_phone_country_code_keeps_it_once(raw):
    assert normalize_value("ph", raw, phone_country_code="1") == "16169547888"


@pytest.mark.parametrize(
    "raw", ["+44 7700 900123", "0044 7700 900123", "tel:+44-7700-900123", "+44 (0) 7700 900123"]
)
def test_phone_written_with_plus_or_00_keeps_its_own_country_code(raw):
    assert normalize_value("ph", raw, phone_country_code="1") == "447700900123"


@pytest.mark.parametrize(("raw", "code", "normalized"), [
    ("07700 900123", "44", "447700900123"),  # trunk 0
    ("(020) 7946 0018", "44", "442079460018"),
    ("030 1234567", "49", "49301234567"),
    ("8 912 345-67-89", "7", "79123456789"),  # Russia's national prefix is 8
    ("06 30 123 4567", "36", "36301234567"),  # Hungary's is 06
])  # fmt: skip
def test_phone_national_prefix_of_its_country_is_replaced_by_the_country_code(
    raw, code, normalized
):
    assert normalize_value("ph", raw, phone_country_code=code) == normalized


def test_phone_leading_zero_that_italian_numbers_keep_stays_after_the_code():
    assert normalize_value("ph", "06 6982 1234", phone_country_code="39") == "390669821234"


@pytest.mark.parametrize(("raw", "code", "normalized"), [
    ("45 12 34 56", "45", "4545123456"),  # a Danish number beginning 45
    ("47 12 34 56", "47", "4747123456"),  # a Norwegian one beginning 47
    ("393 123 4567", "39", "393931234567"),  # an Italian mobile beginning 393
])  # fmt: skip
def test_phone_beginning_as_its_country_code_does_is_told_from_one_carrying_it(
    raw, code, normalized
):
    assert normalize_value("ph", raw, phone_country_code=code) == normalized


@pytest.mark.parametrize("country", ["GB", "gb", "United Kingdom", "GBR", " uk "])
def test_phone_is_read_in_its_own_country_with_phone_country_from_country(country):
    raw = {"ph": "07700 900123", "country": country}
    for normalize in (normalize_user_data, normalize_hashed_values):
        normalized = normalize(raw, phone_country_from_country=True)
        assert normalized.user_data["ph"] == sha("447700900123")
        assert normalized.dropped == []


def test_phone_is_read_as_written_when_phone_country_from_country_is_off():
    normalized = normalize_user_data({"ph": "07700 900123", "country": "GB"})
    assert normalized.dropped == [DroppedValue("ph", "no_country_code")]


@pytest.mark.parametrize(
    "raw",
    [
        {"ph": "07700 900123"},
        {"ph": "07700 900123", "country": "Atlantis"},
        {"ph": "07700 900123", "country": "AQ"},  # Antarctica: no numbers of its own
        {"ph": "07700 900123", "country": ["FR", "GB"]},
        {"ph": "07700 900123", "country": sha("fr")},
    ],
    ids=["no country", "unknown", "without phones", "a list", "hashed"],
)
def test_phone_without_a_country_of_its_own_is_read_in_the_phone_country_code(raw):
    normalized = normalize_user_data(raw, phone_country_code="44", phone_country_from_country=True)
    assert normalized.user_data["ph"] == sha("447700900123")


def test_phone_written_with_its_country_code_keeps_it_whatever_its_country():
    raw = {"ph": "+49 1512 3456789", "country": "FR"}
    normalized = normalize_user_data(raw, phone_country_from_country=True)
    assert normalized.user_data["ph"] == sha("4915123456789")


def test_phones_of_one_customer_list_are_read_in_that_customers_country():
    raw = {"ph": ["06 12 34 56 78", "+44 7700 900123"], "country": "France"}
    normalized = normalize_user_data(raw, phone_country_from_country=True)
    assert normalized.user_data["ph"] == [sha("33612345678"), sha("447700900123")]


@pytest.mark.parametrize(("raw", "code", "normalized"), [
    ("4915123456789", "US", "4915123456789"),  # a German mobile, stored without its +
    (4915123456789, "1", "4915123456789"),  # a number column cannot hold a +
    ("447911123456", "1", "447911123456"),
    ("16169547888", "GB", "16169547888"),
])  # fmt: skip
def test_phone_too_long_for_the_phone_country_but_valid_with_its_own_code_keeps_it(
    raw, code, normalized
):
    assert normalize_value("ph", raw, phone_country_code=code) == normalized


@pytest.mark.parametrize("raw", ["07700 900123", "0616 954 7888"])
def test_phone_too_long_for_the_phone_country_and_valid_nowhere_else_is_dropped(raw):
    assert normalize_user_data({"ph": raw}, phone_country_code="US").dropped == [
        DroppedValue("ph", "invalid")
    ]


def test_phone_only_invalid_in_the_phone_country_is_not_read_as_another_countrys():
    # 679 is no US area code but Fiji's country code: no evidence the number carries one
    assert normalize_value("ph", "6792033649", phone_country_code="US") == "16792033649"


@pytest.mark.parametrize(("raw", "code"), [
    ("16169547888.0", None),  # a float column cast to text
    ("1.6169547888E10", None),
    ("6169547888.0", "US"),
])  # fmt: skip
def test_phone_written_as_a_float_is_the_whole_number_it_holds(raw, code):
    assert normalize_value("ph", raw, phone_country_code=code) == "16169547888"


def test_phone_too_short_even_with_the_phone_country_code_is_dropped():
    assert normalize_value("ph", "54 321", phone_country_code="1") is None


def test_phone_that_is_no_number_is_dropped_with_a_phone_country_code():
    assert normalize_user_data({"ph": "n/a"}, phone_country_code="1").dropped == [
        DroppedValue("ph", "invalid")
    ]


@pytest.mark.parametrize(
    ("code", "region"),
    [("+44", "GB"), (" 44 ", "GB"), (44, "GB"), ("1", "US"), ("GB", "GB"), ("gbr", "GB"),
     ("United Kingdom", "GB"), ("Deutschland", "DE")],
)  # fmt: skip
def test_phone_country_code_is_a_calling_code_or_a_country(code, region):
    assert phone_region(code) == region


@pytest.mark.parametrize("code", ["+44", 44, "GB", "United Kingdom"])
def test_phone_country_code_given_either_way_reads_numbers_alike(code):
    assert normalize_value("ph", "07700 900123", phone_country_code=code) == "447700900123"


@pytest.mark.parametrize(
    "code", ["0044", "044", "1234", "999", "800", "AQ", "Atlantis", "", "+", 0, True, 1.0, ["1"]]
)
def test_phone_country_code_naming_no_country_with_phone_numbers_is_refused(code):
    with pytest.raises(InvalidCountryCode, match="names no country with phone numbers"):
        normalize_user_data({"ph": "07700 900123"}, phone_country_code=code)


def test_phone_country_code_naming_no_country_is_refused_naming_the_parameter_and_its_value():
    with pytest.raises(InvalidCountryCode) as raised:
        normalize_user_data({"ph": "07700 900123"}, phone_country_code="0044")

    assert str(raised.value).startswith(
        "phone_country_code '0044' names no country with phone numbers"
    )


def test_phone_country_code_naming_no_country_is_a_configuration_error_and_a_value_error():
    with pytest.raises(InvalidCountryCode) as raised:
        phone_region("Atlantis")

    assert isinstance(raised.value, ConfigurationError)
    assert isinstance(raised.value, CapiError)
    assert isinstance(raised.value, ValueError)


def test_phone_country_code_changes_no_other_key():
    raw = {"zp": "02134", "external_id": "0042", "db": "1990-02-01", "em": "a@example.com"}
    assert normalize_user_data(raw, phone_country_code="1") == normalize_user_data(raw)


def test_phone_country_code_applies_to_each_phone_of_a_list():
    normalized = normalize_user_data(
        {"ph": ["616 954 7888", "+44 7700 900123"]}, phone_country_code=1
    )
    assert normalized.user_data == {"ph": [sha("16169547888"), sha("447700900123")]}


def test_a_customer_normalized_with_and_without_a_phone_country_code_is_told_apart():
    customer = {"em": "mary@example.com", "ph": "616 954 7888"}  # a group: memoized together
    with_code = normalize_user_data(customer, phone_country_code="1")
    without = normalize_user_data(customer)
    assert with_code.user_data["ph"] == sha("16169547888")
    assert without.dropped == [DroppedValue("ph", "no_country_code")]


def test_hashed_values_alone_get_the_phone_country_code_too():
    normalized = normalize_hashed_values(
        {"ph": "616 954 7888", "fn": "Mary"}, phone_country_code="1"
    )
    assert normalized.user_data == {"ph": sha("16169547888"), "fn": MARY_SHA256}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Zoë", "zoë"), ("O'Brien", "obrien"), ("Jean-Luc", "jeanluc"), ("  MARY  ", "mary")],
)
def test_names_lose_punctuation_and_spaces_but_keep_utf8_letters(raw, normalized):
    assert normalize_value("fn", raw) == normalized


def test_names_are_nfc_normalized_before_hashing():
    decomposed = "Zoe\u0308"  # e + combining diaeresis
    assert normalize_value("ln", decomposed) == "zo\u00eb"
    assert normalize_user_data({"ln": decomposed}).user_data == {"ln": sha("zo\u00eb")}


@pytest.mark.parametrize("key", ["fn", "ln", "ct", "st", "f5first", "f5last"])
def test_mark_parted_from_its_letter_by_a_character_taken_out_composes_with_it(key):
    # a soft hyphen (copied from hyphenated text) between the e and its combining diaeresis
    assert normalize_value(key, "Zoe\u00ad\u0308") == "zo\u00eb"


def test_names_in_non_latin_scripts_keep_their_letters_and_marks():
    assert normalize_value("fn", "Дми́трий") == "дми\u0301трий"  # noqa: RUF001
    assert normalize_value("fn", "अनिता") == "अनिता"


def test_name_made_only_of_punctuation_is_dropped():
    assert normalize_user_data({"fn": "--"}).dropped == [DroppedValue("fn", "invalid")]


def test_city_loses_spaces_and_punctuation():
    assert normalize_value("ct", "St. Louis") == "stlouis"
    assert normalize_value("ct", "São Paulo") == "sãopaulo"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("female", "f"),
        ("WOMAN", "f"),
        ("w", "f"),
        ("F", "f"),
        ("Girl", "f"),
        ("male", "m"),
        ("Man", "m"),
        (" M ", "m"),
        ("boy", "m"),
    ],
)
def test_gender_synonyms_become_f_or_m(raw, normalized):
    assert normalize_value("ge", raw) == normalized


def test_unknown_gender_is_dropped():
    assert normalize_user_data({"ge": "x"}).dropped == [DroppedValue("ge", "invalid")]


@pytest.mark.parametrize(
    "raw",
    [
        "1997-02-16",
        "02/16/1997",
        "19970216",
        "1997/02/16",
        "1997.02.16",
        "16.02.1997",
        "16/02/1997",
        "2-16-1997",
        "1997-02-16T08:30:00Z",
        "1997-02-16 08:30:00+02:00",
        "1997-02-16T08:30:00.123456",
        "1997-02-16 08:30:00+0200",
        "1997-02-16 08:30",
        "1997-02-16 08:30:00 UTC",
        "1997-02-16T08:30:00-05",
        19970216,
        dt.date(1997, 2, 16),
        dt.datetime(1997, 2, 16, 23, 59),
    ],
)
def test_date_of_birth_common_forms_become_yyyymmdd(raw):
    assert normalize_value("db", raw) == "19970216"


@pytest.mark.parametrize("raw", [dt.date(1997, 2, 16), dt.datetime(1997, 2, 16, 23, 59)])
def test_date_objects_hash_like_their_iso_text(raw):
    assert (
        normalize_user_data({"db": raw}).user_data
        == normalize_user_data({"db": "1997-02-16"}).user_data
        == {"db": sha("19970216")}
    )


def test_dates_of_birth_of_one_instant_at_other_offsets_hash_as_their_own_days():
    # equal datetimes (04:00Z is 23:00 the day before at -05:00), told apart by their day
    evening = dt.datetime(1990, 5, 17, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    morning = dt.datetime(1990, 5, 18, 4, 0, tzinfo=dt.timezone.utc)
    assert evening == morning
    assert normalize_user_data({"db": evening}).user_data == {"db": sha("19900517")}
    assert normalize_user_data({"db": morning}).user_data == {"db": sha("19900518")}


def test_date_object_before_year_1000_is_dropped_like_its_text():
    assert normalize_user_data({"db": dt.date(999, 2, 16)}).dropped == [
        DroppedValue("db", "invalid")
    ]


THIS_YEAR = dt.date.today().year


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01",
        "0999-01-01",
        "1800-01-01",
        "1899-12-31",
        "18991231",
        f"{THIS_YEAR + 1}-01-01",
        dt.date(1, 1, 1),
        dt.date(1899, 12, 31),
        dt.date(THIS_YEAR + 1, 1, 1),
        dt.datetime(1800, 1, 1, 12, 0),
    ],
)
def test_birth_year_before_1900_or_after_this_year_is_dropped(raw):
    assert normalize_value("db", raw) is None
    assert normalize_user_data({"db": raw}).dropped == [DroppedValue("db", "invalid")]


def test_a_date_of_birth_after_today_is_dropped_and_today_kept():
    today = dt.date.today()
    later = today + dt.timedelta(days=3)  # past the day's margin for time zones east of here
    assert normalize_value("db", later.isoformat()) is None
    assert normalize_value("db", later) is None
    assert normalize_value("db", today.isoformat()) == today.strftime("%Y%m%d")


def test_birth_dates_are_eight_digits_from_1900_to_this_year():
    assert normalize_value("db", "1900-01-01") == "19000101"
    assert normalize_value("db", dt.date(1900, 1, 1)) == "19000101"
    assert normalize_value("db", f"{THIS_YEAR}-01-01") == f"{THIS_YEAR}0101"
    assert normalize_user_data({"db": dt.date(THIS_YEAR, 1, 1)}).user_data == {
        "db": sha(f"{THIS_YEAR}0101")
    }
    assert normalize_value("db", "0001-01-01") is None  # not "10101"


@pytest.mark.parametrize(
    "raw",
    [
        "1997-02-16 garbage",
        "1997-02-16T",
        "1997-02-16T25:00",
        "1997-02-16 08:30 or so",
    ],
)
def test_date_of_birth_followed_by_text_that_is_not_a_time_is_dropped(raw):
    assert normalize_user_data({"db": raw}).dropped == [DroppedValue("db", "invalid")]


def test_ambiguous_slash_date_is_read_month_first():
    assert normalize_value("db", "03/04/1997") == "19970304"


def test_ambiguous_dotted_date_is_read_day_first():
    assert normalize_value("db", "03.04.1997") == "19970403"


def test_date_of_birth_with_surrounding_spaces_is_read():
    assert normalize_user_data({"db": " 1997-02-16 "}).user_data == {"db": sha("19970216")}


@pytest.mark.parametrize("raw", ["19971345", "1997-02-30", "0000-00-00", "13/13/1997", "soon"])
def test_impossible_date_of_birth_is_dropped(raw):
    assert normalize_user_data({"db": raw}).dropped == [DroppedValue("db", "invalid")]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("California", "ca"),
        ("new york", "ny"),
        ("District of Columbia", "dc"),
        ("Washington, D.C.", "dc"),
        ("Puerto Rico", "pr"),
        ("U.S. Virgin Islands", "vi"),
        ("TX", "tx"),
        ("Hawai\u02bbi", "hi"),  # with its okina (a letter), as the state writes its name
        ("Hawai'i", "hi"),
        ("US-CA", "ca"),  # ISO 3166-2
        ("us-ny", "ny"),
    ],
)
def test_us_state_names_become_two_letter_codes(raw, normalized):
    assert normalize_value("st", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Calif.", "ca"), ("W. Va.", "wv"), ("N. Dak.", "nd"), ("wash.", "wa"), (" Tex. ", "tx")],
)
def test_us_state_abbreviations_written_with_their_period_become_two_letter_codes(raw, normalized):
    assert normalize_value("st", raw) == normalized


def test_a_state_abbreviation_without_its_period_is_read_as_a_region_name():
    # "Del" may be Delhi as well as Delaware: only "Del." is the US state's abbreviation
    assert normalize_value("st", "Del") == "del"


def test_non_us_state_is_lowercased_without_punctuation_or_spaces():
    assert normalize_value("st", "Baden-Württemberg") == "badenwürttemberg"


def test_state_made_only_of_punctuation_is_dropped_not_hashed_as_empty_text():
    result = normalize_user_data({"st": "--"})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("st", "invalid")]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("94035", "94035"),
        ("94035-1234", "94035"),
        ("940351234", "94035"),
        (94035, "94035"),
        ("94035\u20131234", "94035"),  # an en dash, as a word processor writes it
        ("94035 \u2013 1234", "94035"),
        ("94035 - 1234", "94035"),
        ("94035\u22121234", "94035"),  # the minus sign
        ("94035.0", "94035"),  # a float column cast to text
    ],
)
def test_us_zip_codes_keep_first_five_digits(raw, normalized):
    assert normalize_value("zp", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("٩٤٠٣٥", "94035"),  # Arabic-Indic
        ("９４０３５-１２３４", "94035"),  # noqa: RUF001 (fullwidth)
    ],
)
def test_zip_digits_of_other_scripts_are_hashed_as_ascii_digits(raw, normalized):
    assert normalize_value("zp", raw) == normalized
    assert normalize_user_data({"zp": raw}).user_data == {"zp": sha(normalized)}


@pytest.mark.parametrize(
    ("raw", "normalized"), [("SW1A 1AA", "sw1a1aa"), ("1234-567", "1234567"), ("75001", "75001")]
)
def test_other_postcodes_are_lowercase_without_spaces_or_dashes(raw, normalized):
    assert normalize_value("zp", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("us", "us"),
        ("USA", "us"),
        ("United States", "us"),
        ("United States of America", "us"),
        ("U.S.A.", "us"),
        ("DEU", "de"),
        ("Germany", "de"),
        ("Deutschland", "de"),
        ("UK", "gb"),
        ("United Kingdom", "gb"),
        ("Côte d'Ivoire", "ci"),
        ("Cote d'Ivoire", "ci"),
        ("Korea, Republic of", "kr"),
        ("South Korea", "kr"),
        ("Viet Nam", "vn"),
        ("Åland Islands", "ax"),
    ],
)
def test_country_names_and_alpha3_become_alpha2(raw, normalized):
    assert normalize_value("country", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Gambia", "gm"),
        ("the Bahamas", "bs"),
        ("St Lucia", "lc"),
        ("St. Kitts and Nevis", "kn"),
        ("St Vincent and the Grenadines", "vc"),
    ],
)
def test_country_names_with_the_or_an_abbreviated_saint_become_alpha2(raw, normalized):
    assert normalize_value("country", raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Democratic Republic of the Congo", "cd"),
        ("DRC", "cd"),
        ("Republic of Ireland", "ie"),
        ("Éire", "ie"),
        ("België", "be"),
        ("Suomi", "fi"),
        ("Magyarország", "hu"),
        ("Nippon", "jp"),
    ],
)
def test_country_names_people_write_that_iso_does_not_list_become_alpha2(raw, normalized):
    assert normalize_value("country", raw) == normalized


def test_a_country_name_that_names_two_countries_is_dropped():
    # North or South: hashing either would match the wrong people
    assert normalize_user_data({"country": "Korea"}).dropped == [DroppedValue("country", "invalid")]


def test_country_table_covers_every_iso_3166_alpha2_code():
    from target_meta_capi.capi._countries import ISO_3166_1

    codes = [line.split(" ", 1)[0] for line in ISO_3166_1.splitlines()]
    assert len(codes) == 249
    assert all(normalize_value("country", code) == code.lower() for code in codes)


def test_unknown_country_is_dropped():
    assert normalize_user_data({"country": "Atlantis"}).dropped == [
        DroppedValue("country", "invalid")
    ]


@pytest.mark.parametrize("raw", ["null", "NULL", " None ", "nil", "NaN", "undefined", "N/A"])
@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "sent plain"])
def test_external_id_written_as_the_text_of_a_null_is_dropped_not_one_id_for_all(raw, hashed):
    result = normalize_user_data({"external_id": raw}, hash_external_id=hashed)
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("external_id", "invalid")]


def test_external_id_given_as_int_is_hashed_as_text():
    assert normalize_user_data({"external_id": 42}).user_data == {"external_id": sha("42")}


def test_external_id_is_only_trimmed_when_hashing_is_off():
    result = normalize_user_data({"external_id": " Cust-42 "}, hash_external_id=False)
    assert result.user_data == {"external_id": "Cust-42"}


def test_external_id_list_is_only_trimmed_when_hashing_is_off():
    result = normalize_user_data({"external_id": [" A ", 7]}, hash_external_id=False)
    assert result.user_data == {"external_id": ["A", "7"]}


@pytest.mark.parametrize(
    ("raw", "reason"), [("  ", "empty"), (94035.5, "unsupported_type"), (True, "unsupported_type")]
)
def test_unusable_external_id_is_dropped_with_its_reason_when_hashing_is_off(raw, reason):
    result = normalize_user_data({"external_id": raw}, hash_external_id=False)
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("external_id", reason)]


def test_already_hashed_value_passes_through():
    assert normalize_user_data({"em": MARY_SHA256}).user_data == {"em": MARY_SHA256}


def test_sha256_between_invisible_characters_passes_through_not_hashed_again():
    # names drop the invisible characters: what is left would be hashed as a name
    raw = "\ufeff" + MARY_SHA256 + "\u200b"
    assert normalize_user_data({"fn": raw}).user_data == {"fn": MARY_SHA256}


@pytest.mark.parametrize("raw", [10**63, Decimal("1" * 64)], ids=["int", "decimal"])
def test_number_of_64_digits_is_hashed_not_passed_through_as_a_hash(raw):
    assert normalize_user_data({"external_id": raw}).user_data == {"external_id": sha(str(raw))}


def test_uppercase_sha256_passes_through_lowercased():
    result = normalize_user_data({"fn": MARY_SHA256.upper()})
    assert result.user_data == {"fn": MARY_SHA256}


def test_md5_digest_is_treated_as_raw_text_not_as_a_hash():
    md5 = hashlib.md5(b"cust-42").hexdigest()
    assert normalize_user_data({"external_id": md5}).user_data == {"external_id": sha(md5)}


def test_md5_digest_given_as_email_is_dropped_as_invalid():
    md5 = hashlib.md5(b"a@b.com").hexdigest()
    assert normalize_user_data({"em": md5}).dropped == [DroppedValue("em", "invalid")]


def test_raw_value_of_64_characters_that_are_not_hex_is_hashed_not_passed_through():
    email = "g" * 54 + "@gmail.com"  # 64 characters, and no hash
    assert normalize_user_data({"em": email}).user_data == {"em": sha(email)}


def test_is_sha256_hex_requires_exactly_64_hex_digits():
    assert is_sha256_hex(MARY_SHA256)
    assert not is_sha256_hex(MARY_SHA256[:-1])
    assert not is_sha256_hex(MARY_SHA256[:-1] + "g")


def test_list_in_gives_list_out_without_duplicates_in_order():
    result = normalize_user_data({"em": ["B@x.com", "a@x.com", " b@x.com"]})
    assert result.user_data == {"em": [sha("b@x.com"), sha("a@x.com")]}


def test_invalid_list_items_are_dropped_and_the_rest_kept():
    result = normalize_user_data({"ph": ["123", "+1 616 954 7888", None]})
    assert result.user_data == {"ph": [sha("16169547888")]}
    assert result.dropped == [DroppedValue("ph", "invalid"), DroppedValue("ph", "empty")]


def test_list_with_only_invalid_items_leaves_the_key_out():
    assert normalize_user_data({"em": ["nope", ""]}).user_data == {}


@pytest.mark.parametrize("raw", [None, "", "   ", []])
def test_empty_values_are_dropped_as_empty(raw):
    assert normalize_user_data({"fn": raw}).dropped == [DroppedValue("fn", "empty")]


@pytest.mark.parametrize("raw", [True, 3.5, {"a": 1}, {"a"}, b"mary"])
def test_values_of_unsupported_type_are_dropped_without_raising(raw):
    assert normalize_user_data({"fn": raw}).dropped == [DroppedValue("fn", "unsupported_type")]


@pytest.mark.parametrize("key", ["em", "zp", "fn", "external_id"])
@pytest.mark.parametrize("hash_external_id", [True, False])
def test_text_holding_a_lone_surrogate_is_dropped_as_invalid(key, hash_external_id):
    result = normalize_user_data({key: "jo\ud800hn@example.com"}, hash_external_id=hash_external_id)
    assert result.user_data == {}
    assert result.dropped == [DroppedValue(key, "invalid")]


@pytest.mark.parametrize("key", ["doby", "ph", "external_id"])
def test_date_object_for_a_key_other_than_db_is_dropped_as_unsupported_type(key):
    result = normalize_user_data({key: dt.date(1997, 2, 16)})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue(key, "unsupported_type")]


def test_integral_decimal_is_accepted_for_numeric_keys():
    assert normalize_value("zp", Decimal("94035")) == "94035"


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [
        ("ph", 16169547888.0, "16169547888"),
        ("zp", 94035.0, "94035"),
        ("db", 19970216.0, "19970216"),
        ("external_id", 42.0, "42"),
    ],
)
def test_integral_float_is_accepted_like_an_integer_for_numeric_keys(key, raw, normalized):
    assert normalize_value(key, raw) == normalized
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("ph", 16169547888.5),
        ("zp", 94035.5),
        ("zp", float("nan")),
        ("zp", float("inf")),
        ("external_id", 2.0**53 + 2),  # may not be the source's integer
    ],
)
def test_float_that_is_not_an_exact_integer_is_refused_for_numeric_keys(key, raw):
    assert normalize_user_data({key: raw}).dropped == [DroppedValue(key, "unsupported_type")]


@pytest.mark.parametrize("key", ["zp", "external_id"])  # keys a 16-digit number is valid for
def test_the_largest_float_below_which_every_integer_is_exact_is_still_read(key):
    assert normalize_value(key, 2.0**53) == normalize_value(key, 2**53) == "9007199254740992"


@pytest.mark.parametrize(
    "raw", [10**5000, Decimal("1E+5000"), Decimal("-1E+64")], ids=["int", "decimal", "negative"]
)
@pytest.mark.parametrize("hash_external_id", [True, False])
def test_number_with_more_digits_than_any_id_is_dropped_as_invalid(raw, hash_external_id):
    # as text, Python refuses an int of 5001 digits (ValueError); JSON's 1e5000 is such one
    result = normalize_user_data({"ph": raw, "external_id": raw}, hash_external_id=hash_external_id)
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("ph", "invalid"), DroppedValue("external_id", "invalid")]


def test_number_of_64_digits_is_still_read_as_an_id():
    assert normalize_value("external_id", Decimal("9" * 64)) == "9" * 64
    assert normalize_value("external_id", 10**63) == "1" + "0" * 63


def test_unhashed_keys_pass_through_untouched():
    raw = {
        "client_ip_address": "2001:db8::1",
        "client_user_agent": "Mozilla/5.0 (X11)",
        "fbc": "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
        "fbp": "fb.1.1558571054389.1098115397",
        "lead_id": 123456789012345,
        "madid": "AB-CD",
    }
    assert normalize_user_data(raw).user_data == raw


def test_empty_unhashed_values_are_dropped_as_empty():
    result = normalize_user_data({"fbc": "", "fbp": None})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("fbc", "empty"), DroppedValue("fbp", "empty")]


def test_empty_items_of_an_unhashed_list_are_left_out_and_counted():
    result = normalize_user_data({"client_user_agent": ["Mozilla/5.0", "", None, "  "]})
    assert result.user_data == {"client_user_agent": "Mozilla/5.0"}
    assert result.dropped == [DroppedValue("client_user_agent", "empty")] * 3


def test_an_unhashed_key_given_a_list_of_one_value_is_sent_as_that_value():
    # Meta takes lists for the hashed keys only
    assert normalize_user_data({"client_ip_address": ["203.0.113.7"]}).user_data == {
        "client_ip_address": "203.0.113.7"
    }


@pytest.mark.parametrize(
    "value",
    [["203.0.113.7", "198.51.100.1"], {"ip": "203.0.113.7"}, [{"ip": "203.0.113.7"}]],
    ids=["several", "object", "object-in-list"],
)
def test_an_unhashed_key_given_several_values_or_an_object_is_dropped_unsent(value):
    result = normalize_user_data({"client_ip_address": value, "em": "a@b.com"})
    assert list(result.user_data) == ["em"]
    assert result.dropped == [DroppedValue("client_ip_address", "unsupported_type")]


@pytest.mark.parametrize(
    "value",
    [b"203.0.113.7", bytearray(b"203.0.113.7"), {"203.0.113.7"}, True, dt.date(2026, 1, 2)],
    ids=["bytes", "bytearray", "set", "bool", "date"],
)
@pytest.mark.parametrize("given_as", ["value", "list-of-one"])
def test_an_unhashed_key_given_a_value_json_would_garble_is_dropped_unsent(value, given_as):
    # bytes would reach Meta as base64, a set as a list Meta refuses, a date as text
    raw = value if given_as == "value" else [value]
    result = normalize_user_data({"client_ip_address": raw, "em": "a@b.com"})
    assert list(result.user_data) == ["em"]
    assert result.dropped == [DroppedValue("client_ip_address", "unsupported_type")]


def test_unhashed_list_of_only_empty_values_is_dropped_and_counted_like_a_hashed_one():
    result = normalize_user_data({"client_user_agent": ["", None]})
    assert result.user_data == {}
    assert [value.reason for value in result.dropped] == [
        value.reason for value in normalize_user_data({"fn": ["", None]}).dropped
    ]


def test_empty_list_of_an_unhashed_key_is_dropped_as_empty_like_a_hashed_one():
    result = normalize_user_data({"client_ip_address": []})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("client_ip_address", "empty")]


def test_unknown_keys_are_dropped_never_sent_raw():
    result = normalize_user_data({"email": "a@b.com"})
    assert result.user_data == {}
    assert result.dropped == [DroppedValue("email", "unknown_key")]


def test_dropped_value_never_contains_the_raw_value():
    result = normalize_user_data({"em": "secret-not-an-email", "ph": "12"})
    assert "secret" not in repr(result.dropped)
    assert "12" not in repr(result.dropped)


def test_normalize_value_returns_none_for_invalid_input():
    assert normalize_value("em", "nope") is None
    assert normalize_value("db", None) is None


def test_normalize_value_refuses_keys_that_are_not_hashed():
    with pytest.raises(KeyError):
        normalize_value("fbc", "fb.1.1.x")


def test_equal_values_of_different_types_are_not_confused_by_the_cache():
    assert normalize_user_data({"zp": 1}).user_data == {"zp": sha("1")}
    assert normalize_user_data({"zp": True}).dropped == [DroppedValue("zp", "unsupported_type")]


# --- the partial names and dates of birth of Meta's SDK UserData (f5first ... doby) ----------


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [
        ("f5first", "Maryann", "marya"),
        ("f5first", " O'Brien ", "obrie"),  # punctuation out first, as for fn
        ("f5first", "Zoë", "zoë"),  # shorter than 5: all of it
        ("f5last", "Smithson", "smith"),
        ("fi", "Mary", "m"),
        ("fi", " 'Élodie", "é"),
        ("dobd", "7", "07"),
        ("dobd", "31", "31"),
        ("dobd", 7, "07"),
        ("dobm", "02", "02"),
        ("dobm", 12, "12"),
        ("dobm", "١٢", "12"),  # Arabic-Indic digits
        ("doby", "1997", "1997"),
        ("doby", 1997, "1997"),
        ("doby", 1997.0, "1997"),
    ],
)
def test_metas_sdk_partial_name_and_birth_keys_are_normalized(key, raw, normalized):
    assert normalize_value(key, raw) == normalized
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [
        ("dobd", "1", "01"),
        ("dobm", "1", "01"),
        ("doby", "1900", "1900"),
        ("doby", str(THIS_YEAR), str(THIS_YEAR)),
    ],
)
def test_birth_day_month_and_year_at_the_ends_of_their_ranges_are_kept(key, raw, normalized):
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


@pytest.mark.parametrize(
    ("key", "raw", "normalized"),
    [("dobd", " 7 ", "07"), ("dobm", " 02 ", "02"), ("doby", " 1997 ", "1997")],
)
def test_birth_day_month_and_year_with_surrounding_spaces_are_read(key, raw, normalized):
    assert normalize_user_data({key: raw}).user_data == {key: sha(normalized)}


def test_birth_year_digits_of_other_scripts_are_hashed_as_ascii_digits():
    assert normalize_user_data({"doby": "١٩٩٧"}).user_data == {"doby": sha("1997")}


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("f5first", "..."),
        ("fi", "-"),
        ("dobd", "0"),
        ("dobd", "32"),
        ("dobd", "1st"),
        ("dobm", "13"),
        ("dobm", "Feb"),
        ("dobm", "002"),
        ("doby", "97"),
        ("doby", "1899"),
        ("doby", str(dt.date.today().year + 1)),
        ("doby", 1997.5),
    ],
)
def test_unusable_partial_name_and_birth_values_are_dropped(key, raw):
    result = normalize_user_data({key: raw})

    assert result.user_data == {}
    reason = "invalid" if isinstance(raw, str) else "unsupported_type"
    assert result.dropped == [DroppedValue(key, reason)]


def test_partial_name_and_birth_keys_are_hashed_keys_not_unknown_ones():
    assert {"f5first", "f5last", "fi", "dobd", "dobm", "doby"} <= HASHED_KEYS
    hashed = sha("marya")
    assert normalize_user_data({"f5first": hashed.upper()}).user_data == {"f5first": hashed}


def test_the_keys_meta_says_not_to_hash_pass_through_unhashed():
    # the reference's "Not hashed" list, written out: one moved to the hashed keys must fail
    not_hashed = {
        "client_ip_address": "203.0.113.9",
        "client_user_agent": "Mozilla/5.0",
        "fbc": "fb.1.1554763741205.AbCdEf",
        "fbp": "fb.1.1558571054389.1098115397",
        "subscription_id": "sub-1",
        "fb_login_id": "1234",
        "lead_id": "525645896321548",
        "anon_id": "install-1",
        "madid": "38400000-8cf0-11bd-b23e-10b96e40000d",
        "page_id": "102",
        "page_scoped_user_id": "103",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD",
        "ig_account_id": "104",
        "ig_sid": "105",
    }

    assert set(not_hashed) == UNHASHED_KEYS
    assert normalize_user_data(not_hashed).user_data == not_hashed
