"""What the landing page says: the simulator's address, the Clever hosts it stands in for,
its pages and the registered apps' credentials. No Flask here; routes pass the URLs in."""

from __future__ import annotations

from typing import Mapping

from ..config import BaseUrls
from ..sim import Simulator

APPS_SHOWN = 100  # more apps than this (a busy CI simulator) are counted, not listed


def landing(sim: Simulator, url: str, pages: Mapping[str, str], version: str) -> dict:
    """The landing page's facts; ``url`` is the simulator's base URL as the browser reached it."""
    apps = sim.clever.apps()
    return {
        "name": "Clever Grade Passback Simulator",
        "version": version,
        "url": url,
        "clever_base_urls": BaseUrls(url).mapping(),
        "pages": dict(pages),
        "apps": [{"name": a.name, "client_id": a.client_id,
                  "client_secret": a.client_secret, "redirect_uris": a.redirect_uris,
                  "assignments_url": a.assignments_url} for a in apps[:APPS_SHOWN]],
        "apps_total": len(apps),
    }
