"""target-meta-capi: Singer target and client library for Meta Conversions API."""
