"""``python -m agentship.server``: the same as ``agentship serve``."""

import sys

from agentship.server.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m agentship.server"))
