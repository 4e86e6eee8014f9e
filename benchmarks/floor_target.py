"""The floor of any singer-sdk target: a do-nothing target with every SDK-side speed lever.

Like noop_target.py, but with the compiled validator and per-schema date parsing this project
uses (target_meta_capi.validation) and the SDK's msgspec message reader. Its speed is the most
any target on this SDK can reach on the machine: the gap between it and target-meta-capi is the
cost of the target's own work (mapping, hashing, Meta's rules, sending).
"""

from __future__ import annotations

from noop_target import NoopSink, NoopTarget
from singer_sdk.contrib.msgspec import MsgSpecReader

from target_meta_capi.validation import FastRecordParsingMixin


class FloorSink(FastRecordParsingMixin, NoopSink):
    pass


class FloorTarget(NoopTarget):
    name = "target-floor"
    default_sink_class = FloorSink
    message_reader_class = MsgSpecReader


if __name__ == "__main__":
    FloorTarget.cli()
