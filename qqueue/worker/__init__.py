"""Worker runtime: a supervisor process that does all database work and slot processes that only compute.

- `supervisor`: the loop: waiting (LISTEN/NOTIFY, slot pipes, signals), start and stop, wiring the services.
- `dispatch`: claim sizing, claiming, handing batches to slots.
- `completer`: outcome buffers and their batched, fenced writes (completions, failures, cancels, hand-backs).
- `writer`: the thread that writes those batches behind the loop, on a database session of its own.
- `leases`: lease renewal, cancel requests, lost leases, per-task timeouts.
- `maintenance`: reclaiming expired leases, purging finished rows, vacuum.
- `held`: the tasks this worker holds, one map with one owner.
- `connection`: the loop's two database sessions (queries, LISTEN) and the reconnect back-off.
- `protocol`: the typed messages between supervisor and slots. `slot`: the slot process. `slots`: the
  supervisor's handles on slots.
"""
