"""The scenarios of ``scripts/bench.py`` (``make bench``), one module each.

:mod:`benchmarks.common` holds what every scenario gets (the run's sizes, the context, starting
and measuring the workers) and :mod:`benchmarks.baseline` the bare HTTP loops that give B1 its
bound; ``b1_throughput`` (with B5's memory), ``b2_latency`` (with the B5 soak),
``b3_production``, ``b4_producers`` and ``b6_scale`` each run one scenario and format its
summary line. ``scripts/bench.py`` parses the flags, runs the scenarios asked for and prints.
"""
