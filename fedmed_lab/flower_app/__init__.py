"""Chapter 11 capstone: the course's hospitals as Flower clients.

- :mod:`~fedmed_lab.flower_app.task`: the shared training task, run in the
  course's own simulator as the reference.
- :mod:`~fedmed_lab.flower_app.site_files`: one file of records per hospital,
  which is all a SuperNode is given.
- :mod:`~fedmed_lab.flower_app.central_dp`: the course's central DP step and
  Flower's noise calibration, side by side.
- :mod:`~fedmed_lab.flower_app.client_app` and
  :mod:`~fedmed_lab.flower_app.server_app`: the Flower ``ClientApp`` and
  ``ServerApp`` (import Flower, installed by the ``flower`` extra).
- :mod:`~fedmed_lab.flower_app.runtime`: Flower's simulation runtime in a
  child process, and the environment every Flower process gets.
- :mod:`~fedmed_lab.flower_app.deployment`: Flower's deployment runtime as
  separate processes on 127.0.0.1, with a command line.

Only the last four import ``flwr``; the first three run without it.
"""
