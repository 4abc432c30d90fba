"""The network behind a landing zone: simulated (`simulation/network.py`) or replayed from real
data (`realdata/m5.py`). It sits above both packages, so neither imports the other: the twin
(`simulation/`) runs any `Network`, and the M5 import builds one from the simulator's parts."""

from __future__ import annotations

import json

from .core.ingestion import open_store
from .realdata.m5 import M5Config
from .simulation.evaluation import EvaluationError
from .simulation.network import Network, NetworkConfig, build_network


def load_network(landing: str, store=None) -> Network:
    """Rebuild the network behind a landing zone (a local folder, or any landing store such as the
    S3 one the Dagster resource opens) from its `_simulation/network.json`."""
    raw = (store or open_store(landing)).read_bytes("_simulation/network.json")
    if raw is None:
        raise EvaluationError(
            f"{landing}: no _simulation/network.json -- the twin needs the network that generated this landing zone "
            "(`inventory-pipeline generate` writes a simulated one, `inventory-pipeline import-m5` a replayed real one)"
        )
    return build_from_config(json.loads(raw)["config"])


def build_from_config(cfg: dict) -> Network:
    """The network a `network.json` config describes: simulated, or replayed from real data."""
    if cfg.get("source") == "m5":
        return M5Config.from_dict(cfg).build()
    cfg = dict(cfg)
    cfg["categories"] = tuple(cfg["categories"])
    return build_network(NetworkConfig(**cfg))
