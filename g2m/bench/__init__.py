"""Benchmarks: student inference against the hardware floor and the teacher
(``python -m g2m.bench``), GLNN's latency protocol, and the timing helpers they share with
the run's ``timings.json``."""
