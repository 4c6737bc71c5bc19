"""`sagas bench`: throughput, latency, scaling and cost of the engine on one machine.

Modules, one phase or part each: `harness` (broker, processes, readiness), `load`
(the load generator and the completion observer), `participants` (responders that
answer every command at once), `relay` (the raw consume -> produce path, the limit),
`saga_run` (the saga at saturation), `latency` (open-loop sweep), `scaling`, `tracing`,
`count` (messages per saga), `plot`, `report` and `command` (the CLI).
"""
