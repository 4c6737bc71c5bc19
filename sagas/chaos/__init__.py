"""`sagas chaos`: both sagas under load while faults drawn from a seed are injected.

Layout: `faults/` holds one module per family of faults (processes, network, messages,
store and clock), each registering async fault functions by kind; `proxy.py` is the TCP
proxy on loopback for network faults; the runner draws a schedule from the seed, runs
the system, injects, waits for quiescence, checks, and prints the JSON report.
"""
