"""Example function tools used by the example configs and the demo."""
