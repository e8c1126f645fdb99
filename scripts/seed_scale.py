"""Seed the scale-out database with a chain at size: members, their orders and the ledger (scripts/seed-scale)."""

import argparse
import asyncio
import sys
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backend.cli import seed_orders  # noqa: E402  (the project, run from scripts/)
from backend.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=365, help="the orders are spread over this many days up to now")
    args = parser.parse_args()
    with tqdm(total=args.orders, unit=" orders", unit_scale=True, desc="seeding", file=sys.stderr) as bar:
        done = asyncio.run(
            seed_orders(
                stores_count=args.stores,
                orders=args.orders,
                days=args.days,
                members_count=args.members,
                ledger=True,
                app_id=Settings.from_env().wechat_app_id,
                progress=bar.update,
            )
        )
    print(done)


if __name__ == "__main__":
    main()
