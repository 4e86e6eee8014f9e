"""The column names that map to a Conversions API field by themselves (:data:`ALIASES`),
and the lookups the mapper and the checks of the settings make in them."""

from __future__ import annotations

from target_meta_capi.mapping.parameters import OBJECT_KEYS, Path

# CAPI field → column names that map to it by themselves (matched case-insensitively; when a
# record has several, the earlier name is used first). Documented in the README.
ALIASES: dict[str, tuple[str, ...]] = {
    # whole objects: a record already shaped like a CAPI event
    "user_data": ("user_data",),
    "custom_data": ("custom_data",),
    "app_data": ("app_data",),
    "original_event_data": ("original_event_data",),
    "attribution_data": ("attribution_data",),
    # event parameters
    "event_name": ("event_name",),
    "event_time": ("event_time",),
    "event_id": ("event_id",),
    "event_source_url": ("event_source_url",),
    "action_source": ("action_source",),
    "opt_out": ("opt_out",),
    "referrer_url": ("referrer_url",),
    "data_processing_options": ("data_processing_options",),
    "data_processing_options_country": ("data_processing_options_country",),
    "data_processing_options_state": ("data_processing_options_state",),
    # customer information (normalized and hashed where Meta requires it)
    "user_data.em": ("em", "email", "email_address"),
    "user_data.ph": ("ph", "phone", "phone_number"),
    "user_data.fn": ("fn", "first_name", "firstname"),
    "user_data.ln": ("ln", "last_name", "lastname", "surname"),
    "user_data.ge": ("ge", "gender"),
    "user_data.db": ("db", "date_of_birth", "birthdate", "birth_date", "dob", "birthday"),
    "user_data.ct": ("ct", "city"),
    "user_data.st": ("st", "state"),
    "user_data.zp": ("zp", "zip", "zip_code", "zipcode", "postal_code", "postcode"),
    "user_data.country": ("country", "country_code"),
    "user_data.external_id": ("external_id",),
    "user_data.client_ip_address": ("client_ip_address", "ip_address", "client_ip", "ip"),
    "user_data.client_user_agent": ("client_user_agent", "user_agent"),
    "user_data.fbc": ("fbc",),
    "user_data.fbp": ("fbp",),
    # custom data
    "custom_data.value": ("value",),
    "custom_data.currency": ("currency",),
    "custom_data.order_id": ("order_id",),
    "custom_data.content_ids": ("content_ids",),
    "custom_data.contents": ("contents",),
    "custom_data.num_items": ("num_items",),
    "custom_data.content_name": ("content_name",),
    "custom_data.content_type": ("content_type",),
    "custom_data.content_category": ("content_category",),
    "custom_data.predicted_ltv": ("predicted_ltv",),
    "custom_data.search_string": ("search_string",),
    "custom_data.status": ("status",),
    "custom_data.delivery_category": ("delivery_category",),
}


def _alias_lookup() -> tuple[dict[str, list[tuple[Path, int]]], dict[str, str]]:
    by_column: dict[str, list[tuple[Path, int]]] = {}
    for dotted, names in ALIASES.items():
        for rank, name in enumerate(names):
            by_column.setdefault(name, []).append((tuple(dotted.split(".")), rank))
    objects = {
        name: dotted for dotted, names in ALIASES.items() if dotted in OBJECT_KEYS for name in names
    }
    return by_column, objects


ALIAS_PATHS_BY_COLUMN, OBJECT_ALIASES = _alias_lookup()
USER_DATA_ALIAS_COLUMNS = frozenset(
    name for dotted, names in ALIASES.items() if dotted.startswith("user_data") for name in names
)


# Columns so named hold what identifies a person whatever the table: a column named like a
# place or a gender ("state", "country") may well be an order's, so is not presumed to.
IDENTIFYING_COLUMNS = frozenset(
    name
    for dotted in (
        "user_data.em",
        "user_data.ph",
        "user_data.fn",
        "user_data.ln",
        "user_data.db",
        "user_data.client_ip_address",
        "user_data.client_user_agent",
    )
    for name in ALIASES[dotted]
)
