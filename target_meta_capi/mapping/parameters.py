"""The Conversions API event parameters a record can fill: those holding an object
(``user_data``, ``custom_data`` …), those holding a single value, and the dotted paths
(``user_data.em``) naming a parameter or a key of one of its objects."""

from __future__ import annotations

from target_meta_capi.capi.shapes import Event

# Top-level event parameters holding objects (user_data, custom_data …) or single values: those
# of the client's Event, so that a parameter it gains can be mapped too.
OBJECT_KEYS = frozenset(
    {"user_data", "custom_data", "app_data", "original_event_data", "attribution_data"}
)
SCALAR_KEYS = (Event.__required_keys__ | Event.__optional_keys__) - OBJECT_KEYS

Path = tuple[str, ...]
