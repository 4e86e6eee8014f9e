"""The baseline of the benchmark: a singer-sdk target whose sink does nothing.

Everything the SDK does for every target (reading, parsing, default jsonschema validation,
date-time parsing, batching, metrics) happens; `process_batch` throws the batch away.
Run: `.venv/bin/python benchmarks/noop_target.py --config noop.json < input.singer`.
"""

from __future__ import annotations

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink


class NoopSink(BatchSink):
    def process_batch(self, context: dict) -> None:
        """Drop the batch: the baseline measures only the SDK's own per-record work."""


class NoopTarget(Target):
    name = "target-noop"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NoopSink


if __name__ == "__main__":
    NoopTarget.cli()
