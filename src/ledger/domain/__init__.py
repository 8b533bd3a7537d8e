"""The domain: money, the aggregates (fund, donation, grant) with their events and rules, and
the typed errors. No I/O; imports only the standard library and ``eventsourcing.domain``
(checked by import-linter)."""
