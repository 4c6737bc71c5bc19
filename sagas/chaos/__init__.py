"""`sagas chaos`: both sagas under load while faults drawn from a seed are injected.

Layout: `faults/` holds one module per family of faults (processes, network, messages,
store and clock), each registering async fault functions by kind; `proxy.py` is the TCP
proxy on loopback for network faults; the runner draws a schedule from the seed, runs
the system, injects, waits for quiescence, checks, and prints the JSON report.
The faults that need a hold inside a process are wrappers around it, entry points of
their own: `engine.py` (with `store.py`) an engine, `service.py` (with `participant.py`)
a participant service; ``sagas run`` and ``sagas serve`` have none of them.
"""
