"""capi/privacy.py's masking of event fields, beyond what the tests of customer information
outside user_data (test_customer_information_outside_user_data.py) drive."""

from target_meta_capi.capi.privacy import mask_fields


def test_mask_fields_leaves_a_path_through_a_value_that_is_no_object_as_it_is() -> None:
    event = {"custom_data": "a note from the buyer", "event_name": "Purchase"}
    assert mask_fields(event, [("custom_data", "buyer")]) == event
