"""Fault injection with a ledger kept outside Redis: the evidence behind the README's guarantees.

* ``probes``: handlers that append what they ran to a file per process (``JOBRUNNER_LEDGER_DIR``);
* ``producer``: sends probe jobs and records every enqueue it was told succeeded;
* ``report``: compares both once the system is quiet (nothing lost, no phantoms, duplicates);
* ``invariants``: the keyspace checker (one state per job, leases, counters that add up);
* ``faults`` / ``proxy``: the faults themselves, on a running ``Stack``;
* ``runner``: the scenario loop behind ``jobrunner chaos``;
* ``preflight``: the startup warnings about Redis settings that can lose jobs.
"""
