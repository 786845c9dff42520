"""Reports over finished runs: mean ± std tables (:mod:`g2m.report.tables`) and figures
(:mod:`g2m.report.plots`); ``python -m g2m.report RUNS... --out DIR``."""
