"""``python -m serving``: the agent server, ``agentship serve`` from a checkout."""

import sys

from agentship.server.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m serving"))
