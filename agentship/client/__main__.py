"""``python -m agentship.client``: the same as ``agentship client``."""

import sys

from agentship.client.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m agentship.client"))
