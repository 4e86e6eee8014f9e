"""The Conversions API event parameters a record can fill: those holding an object
(``user_data``, ``custom_data`` …), those holding a single value, and the dotted paths
(``user_data.em``) naming a parameter or a key of one of its objects."""

from __future__ import annotations

# Top-level event parameters holding objects (user_data, custom_data …) or single values.
_OBJECT_KEYS = frozenset(
    {"user_data", "custom_data", "app_data", "original_event_data", "attribution_data"}
)
_SCALAR_KEYS = frozenset(
    {
        "event_name",
        "event_time",
        "event_id",
        "event_source_url",
        "action_source",
        "opt_out",
        "referrer_url",
        "messaging_channel",
        "customer_segmentation",
        "data_processing_options",
        "data_processing_options_country",
        "data_processing_options_state",
    }
)

Path = tuple[str, ...]
