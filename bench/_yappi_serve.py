"""``python -m serving`` under yappi's CPU clock, every thread: SIGUSR1 starts the profile,
SIGUSR2 stops it and writes the functions' stats to ``$AGENTSHIP_YAPPI_OUT`` (pstat format).

    python bench/_yappi_serve.py -m MODEL -p PORT ...   (bench/store_profile.py --yappi runs it)
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

import yappi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _start(*_: Any) -> None:
    yappi.clear_stats()
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)


def _stop(*_: Any) -> None:
    yappi.stop()
    yappi.get_func_stats().save(os.environ["AGENTSHIP_YAPPI_OUT"], type="pstat")


signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
sys.argv = ["serving", *sys.argv[1:]]
runpy.run_module("serving", run_name="__main__", alter_sys=True)
