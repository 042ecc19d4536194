"""Pure codecs: bytes <-> record batches (docs/format.md)."""
