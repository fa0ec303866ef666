"""Test doubles that ship with the package: the scripted model server."""
