"""A client for Meta's Conversions API, usable without Singer.

Events are plain dicts in CAPI wire shape, typed by the TypedDicts of capi/shapes.py (Event,
UserData, CustomData, Content ...). See docs/client.md for examples.
"""

from .batch import BatchProcessor
from .errors import (
    AuthError,
    BatchProcessingError,
    CapiError,
    ConfigurationError,
    DeliveryError,
    EventsReceivedMismatch,
    GraphAPIError,
    InvalidRequestError,
    NetworkError,
    ProcessorClosedError,
    RequestRejectedError,
    RequestTimeout,
    RequestTooLargeError,
    ThrottledError,
    TransientError,
    classify_response,
)
from .http import HttpResponse, HttpServiceInterface, RequestsHttpService, load_http_service
from .isolate import DeliveryReport, RejectedEvent, deliver_isolating_invalid
from .normalize import (
    DroppedValue,
    NormalizedUserData,
    normalize_user_data,
    normalize_value,
    sha256_hex,
)
from .request import (
    DEFAULT_API_VERSION,
    DEFAULT_GRAPH_URL,
    EventRequest,
    EventRequestAsync,
    EventResponse,
    RequestObserver,
)
from .retry import RetryPolicy
from .rules import RuleViolation, validate_event
from .shapes import (
    ActionSource,
    AppData,
    AttributionData,
    Content,
    CustomData,
    DeliveryCategory,
    Event,
    MessagingChannel,
    OriginalEventData,
    UserData,
    ext_info,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_GRAPH_URL",
    "ActionSource",
    "AppData",
    "AttributionData",
    "AuthError",
    "BatchProcessingError",
    "BatchProcessor",
    "CapiError",
    "ConfigurationError",
    "Content",
    "CustomData",
    "DeliveryCategory",
    "DeliveryError",
    "DeliveryReport",
    "DroppedValue",
    "Event",
    "EventRequest",
    "EventRequestAsync",
    "EventResponse",
    "EventsReceivedMismatch",
    "GraphAPIError",
    "HttpResponse",
    "HttpServiceInterface",
    "InvalidRequestError",
    "MessagingChannel",
    "NetworkError",
    "NormalizedUserData",
    "OriginalEventData",
    "ProcessorClosedError",
    "RejectedEvent",
    "RequestObserver",
    "RequestRejectedError",
    "RequestTimeout",
    "RequestTooLargeError",
    "RequestsHttpService",
    "RetryPolicy",
    "RuleViolation",
    "ThrottledError",
    "TransientError",
    "UserData",
    "classify_response",
    "deliver_isolating_invalid",
    "ext_info",
    "load_http_service",
    "normalize_user_data",
    "normalize_value",
    "sha256_hex",
    "validate_event",
]
