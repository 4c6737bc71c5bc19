"""Message contracts: typed records, Avro codec, wire format, registry, headers.

This package module imports nothing on purpose: the pure core imports
`sagas.contracts.record`, which must not pull fastavro or httpx in. Import the codec from
`sagas.contracts.codec` (or build one with `sagas.contracts.factory.build_codec`).
See docs/contracts.md.
"""
