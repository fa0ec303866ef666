"""Example structured-output type: a pydantic model, named by import path in a config."""

from __future__ import annotations

from pydantic import BaseModel


class WeatherReport(BaseModel):
    city: str
    temperature_c: float
