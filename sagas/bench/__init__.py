"""`sagas bench`: throughput, latency, scaling and cost of the engine on one machine.

Modules, one phase or part each: `harness` (broker, processes), `readiness` (when a
phase's consumer groups own their partitions), `load` (the load generator and the
completion observer), `participants` (responders that answer every command at once),
`framework` (the order saga's services on the participant framework, seeded), `relay`
(the raw consume -> produce path, the limit), `probe` (one hop's cost, one message in
flight), `saga_run` (the saga at saturation), `latency` (open-loop sweep), `cpu` (CPU
time per component), `count` (messages per saga), `state` and `stored_sagas` (restore
and memory), `suite` (every phase in order), `targets`, `report`, `plot`, `run_info`,
`topics` and `command` (the CLI). `service_load` is apart: one participant service
under load (``python -m sagas.bench.service_load``), not a phase of `sagas bench`.
"""
