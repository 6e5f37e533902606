"""A real headless browser for the tests that check a report renders: Debian's `chromium`.

Installed from Debian's packages when missing, as `rgw.py` installs Ceph: as
root with apt-get, unless DR_TEST_INSTALL_BROWSER=0. Under CI (CI=true) a
browser that cannot be had fails the test; elsewhere it is skipped, naming the
command that installs one.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from tests.support.rgw import apt_get_install

PACKAGES = ("chromium",)
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Debian's browser: apt-get install -y --no-install-recommends chromium"


class BrowserUnavailable(RuntimeError):
    """No browser can run here; the message says why and how to fix it."""


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


def install_allowed() -> bool:
    """May the launcher apt-get a browser? Yes unless DR_TEST_INSTALL_BROWSER=0."""
    return os.environ.get("DR_TEST_INSTALL_BROWSER", "1").strip().lower() not in ("0", "false", "no")


def ensure_browser(allow_apt: bool = True) -> str:
    """The browser's path, installing it with apt-get when it is missing and we may."""
    found = find_browser()
    if found:
        return found
    if not allow_apt or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailable(f"no headless browser ({', '.join(NAMES)}); {INSTALL_HINT}")
    r = apt_get_install(PACKAGES)
    found = find_browser()
    if r.returncode != 0 or not found:
        raise BrowserUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {r.stderr[-500:]}")
    return found


def _run(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # Its own profile dir: no state shared with another run or another user's browser.
    with tempfile.TemporaryDirectory(prefix="dr-browser-") as profile:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",  # root in a container has no user namespaces for the sandbox
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def dump_dom(browser: str, page: Path) -> str:
    """The page's DOM after the browser parsed and laid it out."""
    r = _run(browser, "--dump-dom", page.resolve().as_uri())
    if r.returncode != 0:
        raise AssertionError(f"{browser} --dump-dom failed ({r.returncode}): {r.stderr[-1000:]}")
    return r.stdout


def screenshot(browser: str, page: Path, out: Path, size: tuple[int, int] = (1000, 900)) -> Path:
    r = _run(browser, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri())
    if r.returncode != 0 or not out.exists():
        raise AssertionError(f"{browser} --screenshot failed ({r.returncode}): {r.stderr[-1000:]}")
    return out


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, ...]]]:
    """(width, height, the RGB(A) pixels) of an 8-bit RGB or RGBA PNG, decoded with zlib alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), f"unexpected PNG format: depth {depth}, color type {color}"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    pixels: list[tuple[int, ...]] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[x : x + 3]) for x in range(0, stride, channels))
        prev = line
    return width, height, pixels
