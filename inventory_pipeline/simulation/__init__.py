"""Simulated retail network: sample landing data today, the digital twin tomorrow (core, no Dagster)."""

from .landing import generate_landing_zone
from .network import Network, NetworkConfig, build_network
from .policies import BaselinePolicy, baseline_order_quantity

__all__ = [
    "Network",
    "NetworkConfig",
    "build_network",
    "generate_landing_zone",
    "BaselinePolicy",
    "baseline_order_quantity",
]
