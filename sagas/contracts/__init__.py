"""Message contracts: typed records, Avro codec, wire format, registry, headers."""
