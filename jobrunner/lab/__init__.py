"""The lab's logic: what the notebooks in ``notebooks/`` call, so none of it lives only there.

Each module serves one notebook's experiment (``tour``, ``concurrency``, ``profiles``,
``latency``, ``live``) or all of them (``running`` starts stacks and checks that nothing is
left behind, ``figures`` labels and saves plots, ``stats`` summarises repeated runs, ``build``
turns the percent-format sources into ``.ipynb`` files and runs them with papermill).
Everything here needs the ``lab`` extra (pandas, matplotlib).
"""
