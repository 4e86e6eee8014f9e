"""Types of a Conversions API event, for type checkers: the fields of Meta's SDK classes.

Events stay plain dicts in wire shape: these TypedDicts only name the keys (those of Meta's
``facebook_business.adobjects.serverside`` UserData, CustomData, Content, AppData,
OriginalEventData, AttributionData and Event), so a type checker catches a misspelt key or a
value of the wrong type. At run time they are dicts like any other, and keys they do not
name (a custom_data custom property, a parameter newer than this module) are sent as well.

``ext_info`` builds ``app_data.extinfo``, the one field that is no mapping: an array of 16
strings in a fixed order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypedDict, get_args

__all__ = [
    "ActionSource",
    "AppData",
    "AttributionData",
    "Content",
    "CustomData",
    "DeliveryCategory",
    "Event",
    "MessagingChannel",
    "OriginalEventData",
    "UserData",
    "ext_info",
]

ActionSource = Literal[
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
]
DeliveryCategory = Literal["in_store", "curbside", "home_delivery"]
# "whatsapp", the one value Meta's SDK 26 names; Meta's business-messaging guide also covers
# Messenger and Instagram, whose values it does not list: any text is let through
MessagingChannel = str

_Hashed = str | list[str]  # SHA-256 hex, or a list of them (normalize_user_data's output)
# an amount of money: a Decimal (a database's NUMERIC) is sent as the JSON number it holds
_Amount = float | Decimal


class UserData(TypedDict, total=False):
    """user_data as sent: the hashed keys SHA-256 hex (see normalize_user_data), the others
    as they are. Meta's SDK takes ``emails=[...]``, ``phones=[...]``: here a list under em, ph."""

    em: _Hashed
    ph: _Hashed
    fn: _Hashed
    ln: _Hashed
    ge: _Hashed
    db: _Hashed
    ct: _Hashed
    st: _Hashed
    zp: _Hashed
    country: _Hashed
    external_id: _Hashed
    f5first: _Hashed
    f5last: _Hashed
    fi: _Hashed
    dobd: _Hashed
    dobm: _Hashed
    doby: _Hashed
    client_ip_address: str
    client_user_agent: str
    fbc: str
    fbp: str
    subscription_id: str
    fb_login_id: str
    lead_id: str
    anon_id: str
    madid: str
    page_id: str
    page_scoped_user_id: str
    ctwa_clid: str
    ig_account_id: str
    ig_sid: str


class Content(TypedDict, total=False):
    """One item of custom_data.contents (Meta's SDK names the id ``product_id``; Graph ``id``)."""

    id: str
    quantity: int
    item_price: _Amount
    title: str
    description: str
    brand: str
    category: str
    delivery_category: DeliveryCategory


class CustomData(TypedDict, total=False):
    """custom_data. Meta's ``custom_properties`` are just more keys of this dict."""

    value: _Amount
    net_revenue: _Amount
    currency: str
    content_name: str
    content_category: str
    content_ids: list[str]
    contents: list[Content]
    content_type: str
    order_id: str
    predicted_ltv: _Amount
    num_items: int
    status: str
    search_string: str
    delivery_category: DeliveryCategory
    item_number: str


class AppData(TypedDict, total=False):
    advertiser_tracking_enabled: bool
    application_tracking_enabled: bool
    campaign_ids: str
    consider_views: bool
    extinfo: list[str]  # see ext_info()
    include_dwell_data: bool
    include_video_data: bool
    install_referrer: str
    installer_package: str
    receipt_data: str
    url_schemes: list[str]
    windows_attribution_id: str


class OriginalEventData(TypedDict, total=False):
    event_name: str
    event_time: int
    order_id: str
    event_id: str


class AttributionData(TypedDict, total=False):
    scope: str
    visit_time: int
    ad_id: str
    adset_id: str
    campaign_id: str
    attribution_share: float
    attribution_model: str  # first_touch, last_click, linear, time_decay ...
    attr_window: int
    attribution_value: _Amount
    attribution_source: str
    touchpoint_type: str
    touchpoint_ts: int
    attribution_method: str  # ard, deeplink, gpir, mir, srn, invalid_response
    decline_reason: str
    auditing_token: str
    linkage_key: str
    touchpoint_id: str
    attribution_setting: dict[str, object]
    total_credit: float
    partner_client_id: str


class _EventRequired(TypedDict):
    event_name: str
    event_time: int  # Unix seconds
    action_source: ActionSource
    user_data: UserData


class Event(_EventRequired, total=False):
    """One event: event_name, event_time, action_source and user_data required."""

    event_id: str
    event_source_url: str
    referrer_url: str
    opt_out: bool
    custom_data: CustomData
    app_data: AppData
    data_processing_options: list[Literal["LDU"]]
    data_processing_options_country: int
    data_processing_options_state: int
    messaging_channel: MessagingChannel
    original_event_data: OriginalEventData
    attribution_data: AttributionData
    advanced_measurement_table: str


_ExtInfoVersion = Literal["a2", "i2"]  # Android, iOS: the only versions Meta takes


def ext_info(
    ext_info_version: _ExtInfoVersion,
    *,
    app_package_name: str = "",
    short_version: str | int = "",
    long_version: str = "",
    os_version: str = "",
    device_model_name: str = "",
    locale: str = "",
    timezone_abbreviation: str = "",
    carrier: str = "",
    screen_width: str | int = "",
    screen_height: str | int = "",
    screen_density: str | float = "",
    cpu_core_count: str | int = "",
    total_disk_space_gb: str | int = "",
    free_disk_space_gb: str | int = "",
    device_time_zone: str = "",
) -> list[str]:
    """``app_data.extinfo``: the 16 values in Meta's order (that of the parameters here, as
    in Meta's ExtendedDeviceInfo), as text, "" for those not given.

    Meta requires every index, an empty string where a value is unknown (``a2`` for Android,
    ``i2`` for iOS). Meta's SDK fills the gaps with null instead. Another version raises
    ConfigurationError: Meta documents only these two.
    """
    if ext_info_version not in get_args(_ExtInfoVersion):
        # imported here: errors.py imports privacy.py, which reads the keys of these types
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"ext_info_version must be 'a2' (Android) or 'i2' (iOS), not {ext_info_version!r}"
        )
    values = (
        ext_info_version,
        app_package_name,
        short_version,
        long_version,
        os_version,
        device_model_name,
        locale,
        timezone_abbreviation,
        carrier,
        screen_width,
        screen_height,
        screen_density,
        cpu_core_count,
        total_disk_space_gb,
        free_disk_space_gb,
        device_time_zone,
    )
    return ["" if value is None else str(value) for value in values]
