"""``python -m tests.faults [--scale small|large] [--seed N] [--log-dir DIR]``: the fault-injection
campaign, with its report; exits 1 if an invariant was broken."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.faults.campaign import LARGE, SMALL, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["small", "large"], default="large")
    parser.add_argument("--seed", type=int, help="the random seed (default: the scale's)")
    parser.add_argument("--log-dir", type=Path, help="where the servers' logs go (default: a temporary dir)")
    args = parser.parse_args()
    scale = LARGE if args.scale == "large" else SMALL
    if args.seed is not None:
        scale = dataclasses.replace(scale, seed=args.seed)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="agentship-faults-"))
    print(f"logs: {log_dir}")
    return 0 if run(log_dir, scale).ok() else 1


if __name__ == "__main__":
    sys.exit(main())
