"""The lab's logic: what the notebooks in ``notebooks/`` call, so none of it lives only there.

Each module serves one notebook's experiment (``tour``, ``concurrency``, ``profiles``,
``latency``, ``backoff``, ``limits``, ``failures``, ``live``) or all of them (``running`` starts
stacks and checks that nothing is left behind, ``progress`` calls the experiments off the
kernel's event loop with a line per step, ``figures`` labels and saves plots, ``stats`` and
``charts`` summarise repeated runs, ``build`` turns the percent-format sources into ``.ipynb``
files and runs them with papermill).
Everything here needs the ``lab`` extra (pandas, matplotlib).
"""
