"""Open a report in headless Chromium and read back the page's self-check (tests, benchmarks).

The page, opened with ``#selftest=QUERY``, draws its graphs, runs a search and writes what it
saw (node counts per colour, errors, fetched resources, milliseconds) into ``<pre id=selftest>``;
``--dump-dom`` prints the DOM after the page's scripts ran. Only the standard library is used.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import tempfile
from urllib.parse import quote

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--mute-audio", "--disable-extensions"]


def chromium() -> str | None:
    """The Chromium binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> str:
    profile = tempfile.mkdtemp(prefix="onnxopt-chromium-")
    # Its own process group: on a timeout the browser's helper processes go with it.
    proc = subprocess.Popen([chromium() or "chromium", *FLAGS, f"--user-data-dir={profile}",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"chromium did not finish within {timeout:.0f} s") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def selftest(page: str, query: str = "", timeout: float = 90, expand: bool = False,
             bodies: bool = False) -> dict:
    """The page's self-check as a dict (raises RuntimeError when the page wrote none);
    ``expand``: it also unfolds the first folded region of each side; ``bodies``: after the
    search, it draws every If/Loop/Scan body and counts each one's nodes per colour."""
    url = ("file://" + quote(os.path.abspath(page)) + "#selftest=" + quote(query)
           + ("&expand" if expand else "") + ("&bodies" if bodies else ""))
    dom = _run(["--virtual-time-budget=20000", "--dump-dom", url], timeout)
    start = dom.find('<pre id="selftest"')
    if start < 0:
        raise RuntimeError("the page has no self-check block")
    body = dom[dom.index(">", start) + 1:dom.index("</pre>", start)]
    if not body.strip():
        raise RuntimeError("the page's script did not finish its self-check")
    return json.loads(html.unescape(body))


def screenshot(page: str, png: str, size: str = "1400,1000", timeout: float = 90,
               search: str = "") -> None:
    """Save a screenshot of the page (after searching for ``search`` and opening its first hit,
    when given)."""
    url = "file://" + quote(os.path.abspath(page)) + (f"#selftest={quote(search)}" if search else "")
    _run(["--virtual-time-budget=20000", "--hide-scrollbars", f"--window-size={size}",
          f"--screenshot={os.path.abspath(png)}", url], timeout)
    if not os.path.exists(png):
        raise RuntimeError(f"chromium wrote no screenshot {png}")
