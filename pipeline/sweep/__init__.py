"""The sweep: a grid over any axes (grid.py), one chain of stages per point (chain.py) run by an executor
(executors.py), and the summary of its results (summary.py, figure.py)."""
