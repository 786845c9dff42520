"""``python -m g2m.report``: see :mod:`g2m.report.tables`."""

from g2m.cli import run_tool
from g2m.report.tables import main

run_tool("g2m.report", main)
