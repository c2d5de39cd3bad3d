"""The lab's experiments, each runnable as ``python -m jobrunner.experiments.<name>``:
``backoff_sim`` (discrete-event), ``backoff_live`` (the real stack), ``limiter_accuracy`` and
``backpressure``. Each writes a CSV, a PNG and a JSON summary to ``results/``."""
