"""Click through the simulator's fake Clever login over HTTP, the way a person's browser does."""

from __future__ import annotations

import html
import re
import socket
from urllib.parse import urlsplit

import httpx


def login_redirect(authorize_url: str, user_id: str) -> str:
    """Open ``authorize_url``, pick the person's district and school, log them in, and return
    the ``Location`` Clever sends the browser to (the app's redirect URI with code or error)."""
    parts = urlsplit(authorize_url)
    base = f"{parts.scheme}://{parts.netloc}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200 and "Log in to" in page.text, (page.status_code, page.text[:500])
        if re.search(r'sim_school=[0-9a-f]{24}', page.text) is None:  # pick the district first
            districts = re.findall(r'href="\?([^"]*sim_district=[0-9a-f]{24})"', page.text)
            page = _page_with(browser, parts.path, districts, lambda p: "sim_school=" in p.text)
        schools = re.findall(r'href="\?([^"]*sim_school=[0-9a-f]{24})"', page.text)
        page = _page_with(browser, parts.path, schools, lambda p: f'value="{user_id}"' in p.text)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        nxt = html.unescape(re.search(r'name="next" value="([^"]*)"', page.text).group(1))
        resp = browser.post("/oauth/login", data={"csrf": csrf, "user_id": user_id, "next": nxt})
        assert resp.status_code == 303, resp.text[:500]
        resp = browser.get(resp.headers["Location"])
        assert resp.status_code == 302, resp.text[:500]
        return resp.headers["Location"]


def _page_with(browser: httpx.Client, path: str, links: list[str], wanted) -> httpx.Response:
    """The first of the picker's links whose page satisfies ``wanted``."""
    for link in links:
        page = browser.get(path + "?" + html.unescape(link))
        if wanted(page):
            return page
    raise AssertionError(f"none of {len(links)} picker links led to the person")


def open_live_stream(port: int, path: str, cookie: str = "") -> socket.socket:
    """A gradebook live stream opened as the page's EventSource does, over a raw socket (so a
    test sees the chunks themselves), once the server has said ``: connected``."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
              f"Cookie: {cookie}\r\n\r\n".encode())
    data = b""
    while b": connected" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data
    return s
