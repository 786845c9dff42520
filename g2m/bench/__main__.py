"""``python -m g2m.bench``: see :mod:`g2m.bench.bench`."""

from g2m.bench.bench import main

main()
