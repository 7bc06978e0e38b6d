"""The built book in a real browser: headless Chromium over the DevTools protocol.

Serves ``_build/html`` on 127.0.0.1 (an ``http.server`` thread on a free
port) and drives Chromium through ``--remote-debugging-pipe`` (the DevTools
protocol over two pipes, standard library only: no chromedriver, no Selenium,
nothing downloaded). Nothing leaves 127.0.0.1: Chromium's background services
are off, every host name other than 127.0.0.1 fails to resolve, and the test
checks that every resource a page loaded came from the local server.

Checks, on every page listed in ``_toc.yml``:

* it loads (HTTP 200) and has a title;
* every internal ``a[href]`` and ``img[src]`` resolves (HTTP 200), and a
  ``#fragment`` names an ``id`` of its target page;
* every image is decoded (``naturalWidth > 0``);
* nothing was loaded from anywhere but the local server;
* MathJax typeset the math (``mjx-container`` elements) on pages with ``$...$`` math;
* the ipywidgets explorers of chapters 3 and 4 rendered from their saved state
  (the html-manager's ``.jupyter-widgets`` / ``.widget-slider`` elements);
* moving a kernel-free slider (``focaledu.static_explorer``) swaps the image.

Screenshots of three pages go to ``_build/browser-artifacts/`` (or
``$FOCALEDU_BROWSER_ARTIFACTS``). Skipped, with the reason, when no Chromium
is installed (``apt-get install chromium``; or set ``FOCALEDU_CHROMIUM``) or
the book is not built (``make book``).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("FOCALEDU_BOOK_HTML", ROOT / "_build" / "html"))
ARTIFACTS = Path(os.environ.get("FOCALEDU_BROWSER_ARTIFACTS", ROOT / "_build" / "browser-artifacts"))
TIMEOUT = 30  # seconds for any one wait in the browser
CHAPTER_WITH_WIDGETS = ("book/03_hierarchical_contextualization", "book/04_gated_aggregation")
KERNEL_FREE_EXPLORERS = [
    ("book/03_hierarchical_contextualization", "explorer-receptive-field"),
    ("book/04_gated_aggregation", "explorer-gates"),
    ("book/08_interpreting_focalnets", "explorer-modulation"),
]
SCREENSHOTS = ("book/intro", "book/03_hierarchical_contextualization", "book/04_gated_aggregation")

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no DNS, no other host
    "--window-size=1280,900", "--hide-scrollbars",
]


def _chromium():
    for name in (os.environ.get("FOCALEDU_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _toc_pages():
    """The pages of ``_toc.yml`` (root first), as paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb)$", "", page) for page in pages]


def _skip_reason():
    if _chromium() is None:
        return "no Chromium (apt-get install chromium, or set FOCALEDU_CHROMIUM)"
    if not (HTML / "index.html").is_file():
        return f"no built book in {HTML} (make book)"
    stamp = HTML / ".buildinfo"
    if (stamp if stamp.is_file() else HTML / "index.html").stat().st_mtime < (ROOT / "_config.yml").stat().st_mtime:
        return f"{HTML} is older than _config.yml (make book)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


# --- a local server --------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def site():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# --- a minimal DevTools-protocol client over --remote-debugging-pipe -------------------------------

class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="focaledu-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # bash, not sh: dash only redirects single-digit file descriptors.
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', executable,
             *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies = {}
        self._lock = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def _read(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._closed = True
                    self._lock.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                reply = json.loads(message)
                if "id" in reply:
                    with self._lock:
                        self._replies[reply["id"]] = reply
                        self._lock.notify_all()

    def call(self, method, session=None, **params):
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        with self._lock:
            while ident not in self._replies:
                if self._closed:
                    raise RuntimeError(f"Chromium exited during {method}: {self.proc.stderr.read()[-2000:]!r}")
                if not self._lock.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no reply to {method} within {TIMEOUT} s")
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def evaluate(self, expression, await_promise=False):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise, timeout=TIMEOUT * 1000)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=TIMEOUT):
        """Polls ``expression`` until it is truthy; returns its last value (falsy on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def open(self, url):
        self.page("Page.navigate", url=url)
        time.sleep(0.05)
        if not self.wait_for(f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url)})"):
            raise TimeoutError(f"{url} did not finish loading within {TIMEOUT} s")

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    browser = Browser(_chromium())
    yield browser
    browser.close()


# --- what the pages hold ---------------------------------------------------------------------------

# Waits for every image to be decoded (also lazy ones), then lists links, images and resources.
_PAGE_FACTS = """(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    title: document.title,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    images: imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
    resources: performance.getEntriesByType('resource').map(r => r.name),
  };
})()"""


@pytest.fixture(scope="module")
def pages(site, browser):
    """Opens every page of the table of contents once; ``{page: facts}``."""
    facts = {}
    for page in _toc_pages():
        if not (ROOT / f"{page}.md").exists() and not (ROOT / f"{page}.ipynb").exists():
            continue  # listed but not written yet: tests/test_book.py reports it
        url = site + page + ".html"
        if _status(url)[0] != 200:
            facts[page] = None  # not built: test_every_toc_page_loads reports it
            continue
        browser.open(url)
        facts[page] = dict(browser.evaluate(_PAGE_FACTS, await_promise=True), url=url)
        facts[page]["math"] = browser.wait_for("document.querySelectorAll('mjx-container').length", timeout=0) or 0
    return facts


def _status(url, cache={}):
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                cache[url] = (response.status, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as error:
            cache[url] = (error.code, "")
    return cache[url]


def _built(pages):
    return {page: facts for page, facts in pages.items() if facts is not None}


def test_every_toc_page_loads(pages):
    missing = [page for page, facts in pages.items() if facts is None]
    assert not missing, f"in _toc.yml and written, but not in {HTML} (HTTP 404; make book): {missing}"
    assert pages, "no page of _toc.yml was found"
    for page, facts in _built(pages).items():
        assert facts["title"].strip(), f"{page}: empty <title>"


def test_no_broken_internal_links_or_images(site, pages):
    broken = []
    for page, facts in _built(pages).items():
        targets = facts["links"] + [image["src"] for image in facts["images"]]
        for target in targets:
            if not target.startswith(site):
                continue  # external (launch buttons, the repository), mailto:, data: images
            base, fragment = urldefrag(target)
            status, text = _status(base)
            if status != 200:
                broken.append(f"{page}: {target} -> HTTP {status}")
            elif fragment and base.endswith(".html") and not re.search(
                rf"""\b(id|name)\s*=\s*["']{re.escape(fragment)}["']""", text
            ):
                broken.append(f"{page}: {target} -> no element with id {fragment!r}")
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))


def test_every_image_is_decoded(pages):
    missing = [f"{page}: {image['src'][:100]}" for page, facts in _built(pages).items()
               for image in facts["images"] if not image["ok"]]
    assert not missing, "images that did not load (naturalWidth == 0):\n" + "\n".join(missing)
    assert sum(len(facts["images"]) for facts in _built(pages).values()) > 0


def test_nothing_is_loaded_from_the_network(site, pages):
    remote = sorted({f"{page}: {name}" for page, facts in _built(pages).items() for name in facts["resources"]
                     if not (name.startswith(site) or name.startswith("data:") or name.startswith("blob:"))})
    assert not remote, "resources loaded from outside the local server:\n" + "\n".join(remote)


def test_math_is_typeset(pages):
    with_math = [page for page in _built(pages) if re.search(r"\$[^$\n]+\$", (ROOT / f"{page}.md").read_text()
                                                      if (ROOT / f"{page}.md").exists() else "")]
    assert with_math, "no chapter has $...$ math"
    untypeset = [page for page in with_math if not pages[page]["math"]]
    assert not untypeset, f"pages with math but no MathJax output (mjx-container): {untypeset}"


def test_saved_widgets_render(site, browser):
    """The ipywidgets explorers render from the widget state saved in the page (no kernel)."""
    for page in CHAPTER_WITH_WIDGETS:
        browser.open(site + page + ".html")
        saved = browser.evaluate(
            "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
        assert saved, f"{page}: no saved widget views in the HTML (was the widget state stored?)"
        rendered = browser.wait_for(
            "document.querySelectorAll('.jupyter-widgets .widget-slider, .widget-slider').length")
        assert rendered, f"{page}: {saved} saved widget views, but no slider was rendered by the html-manager"


@pytest.mark.parametrize("page, element_id", KERNEL_FREE_EXPLORERS, ids=[p for p, _ in KERNEL_FREE_EXPLORERS])
def test_kernel_free_slider_swaps_the_image(site, browser, page, element_id):
    browser.open(site + page + ".html")
    root = f"document.getElementById({json.dumps(element_id)})"
    assert browser.evaluate(f"!!{root}"), f"{page}: no #{element_id} (focaledu.static_explorer)"
    before = browser.evaluate(f"{root}.querySelector('img.focaledu-explorer-image').src")
    result = browser.evaluate(f"""(async () => {{
      const root = {root};
      const slider = root.querySelector('input.focaledu-explorer-slider');
      const img = root.querySelector('img.focaledu-explorer-image');
      slider.value = String((+slider.value + 1) % (+slider.max + 1));
      slider.dispatchEvent(new Event('input', {{bubbles: true}}));
      await img.decode().catch(() => null);
      const frames = JSON.parse(root.getAttribute('data-frames'));
      return {{src: img.src, frame: +root.getAttribute('data-frame'), frames: frames.length,
               width: img.naturalWidth, label: root.querySelector('output.focaledu-explorer-value').textContent}};
    }})()""", await_promise=True)
    assert result["src"] != before, "moving the slider did not change the image"
    assert result["src"].startswith("data:image/") and result["width"] > 0
    assert 0 <= result["frame"] < result["frames"]


def test_screenshots(site, browser, capsys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for page in SCREENSHOTS:
        browser.open(site + page + ".html")
        browser.wait_for("!window.MathJax || !MathJax.startup || !MathJax.startup.promise || "
                         "document.querySelectorAll('mjx-container').length > 0", timeout=5)
        browser.evaluate("(() => { const e = document.querySelector('.focaledu-explorer');"
                         " if (e) e.scrollIntoView(); })()")
        path = ARTIFACTS / (page.replace("/", "_") + ".png")
        browser.screenshot(path)
        assert path.stat().st_size > 1000, path
        paths.append(path)
    with capsys.disabled():
        print("\nbrowser screenshots:\n" + "\n".join(f"  {path}" for path in paths))
