"""The imperative shell around the pure core: Kafka loop, transactions, router,
timers and the SQLite store."""
