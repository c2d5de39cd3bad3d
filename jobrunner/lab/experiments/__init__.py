"""The lab's experiments, each runnable as ``python -m jobrunner.lab.experiments.<name>`` or
``jobrunner experiment <name>``: ``backoff_sim`` (discrete-event), ``backoff_live`` (the real
stack), ``limiter_accuracy`` and ``backpressure``. Each writes a CSV, a PNG and a JSON summary to
``results/``."""

# Module names in jobrunner.lab.experiments; each has a click command ``main`` taking --full, --out.
EXPERIMENTS = ("backoff_sim", "backoff_live", "limiter_accuracy", "backpressure")
