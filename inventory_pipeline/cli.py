"""`inventory-pipeline` console script."""

from __future__ import annotations

import argparse
import json
import sys


def _generate(args: argparse.Namespace) -> int:
    from .simulation import NetworkConfig, generate_landing_zone

    cfg = NetworkConfig(
        regions=args.regions, dcs=args.dcs, stores=args.stores, skus=args.skus, suppliers=args.suppliers,
        days=args.days, start_date=args.start_date, seed=args.seed,
    )
    summary = generate_landing_zone(
        cfg, args.out, fmt=args.format, write_truth=not args.no_truth,
        progress=(lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inventory-pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="simulate a retail network and write it as a landing zone (contract v1)")
    g.add_argument("--out", required=True, help="landing-zone folder to write")
    g.add_argument("--regions", type=int, default=2)
    g.add_argument("--dcs", type=int, default=2)
    g.add_argument("--stores", type=int, default=8)
    g.add_argument("--skus", type=int, default=60)
    g.add_argument("--suppliers", type=int, default=6)
    g.add_argument("--days", type=int, default=365)
    g.add_argument("--start-date", default="2025-01-01")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--format", choices=["csv", "parquet"], default="csv")
    g.add_argument("--no-truth", action="store_true", help="do not write _simulation/true_demand.parquet")
    g.add_argument("-v", "--verbose", action="store_true")
    g.set_defaults(func=_generate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
