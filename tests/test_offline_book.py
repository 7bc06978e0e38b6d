"""The built book works offline: no script or stylesheet comes from a CDN.

The configuration checks are fast and need no build. The HTML checks scan
``_build/html`` when it exists and is newer than ``_config.yml`` (``make book``),
and are skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
HTML = Path(os.environ.get("FOCALEDU_BOOK_HTML", ROOT / "_build" / "html"))  # built book to scan
VENDOR_STAMPS = list((ROOT / "book" / "_static" / "vendor").glob(".versions-*"))


def _config():
    return yaml.safe_load(CONFIG.read_text())


def _sphinx_config():
    return _config()["sphinx"]["config"]


def _is_remote(url: str) -> bool:
    return url.startswith("//") or urlsplit(url).scheme in {"http", "https"}


def _static_dirs():
    return [ROOT / path for path in _sphinx_config().get("html_static_path", [])]


def _local_assets():
    config = _sphinx_config()
    return [config["mathjax_path"], *config["nb_ipywidgets_js"]]


def test_assets_are_served_from_static():
    config = _sphinx_config()
    assert "mathjax_path" in config, "set sphinx.config.mathjax_path, else MathJax comes from jsDelivr"
    assert "nb_ipywidgets_js" in config, "set sphinx.config.nb_ipywidgets_js, else myst-nb uses CDNs"
    remote = [url for url in _local_assets() if _is_remote(url)]
    assert not remote, f"these assets are loaded from the network at view time: {remote}"
    for name in ("require", "html-manager"):
        assert any(name in url for url in config["nb_ipywidgets_js"]), f"no {name} script in nb_ipywidgets_js"
    for url, attributes in config["nb_ipywidgets_js"].items():
        cdn = {k: v for k, v in (attributes or {}).items() if isinstance(v, str) and _is_remote(v)}
        assert not cdn, f"{url} has CDN attributes {cdn}"
    assert _static_dirs(), "html_static_path is empty"


def test_make_book_fetches_the_configured_assets(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    vendor = tmp_path / "vendor"  # not fetched yet, so `make book` must fetch it first
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "book", f"VENDOR={vendor}"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert "npm" in dry_run and "pack" in dry_run, "`make book` does not run `make assets` when they are missing"
    for url in _local_assets():
        top = url.split("/")[1]  # vendor/<package>/...
        assert f"{vendor}/{top}" in dry_run, f"`make assets` does not fill vendor/{top} ({url})"


@pytest.mark.skipif(not VENDOR_STAMPS, reason="book/_static/vendor not fetched yet (make assets)")
def test_configured_assets_exist():
    missing = [url for url in _local_assets() if not any((d / url).is_file() for d in _static_dirs())]
    assert not missing, f"not in {_static_dirs()}: {missing} (run `make assets`)"


def test_launch_buttons():
    config = _config()
    repo = config["repository"]["url"]
    assert urlsplit(repo).netloc == "github.com" and len(urlsplit(repo).path.strip("/").split("/")) == 2
    assert config["repository"].get("branch")
    launch = config["launch_buttons"]
    assert launch.get("colab_url") and launch.get("binderhub_url")
    assert config.get("html", {}).get("use_download_button", True)


def _built_pages():
    index = HTML / "index.html"
    if not index.is_file():
        pytest.skip("no _build/html (make book)")
    stamp = HTML / ".buildinfo"  # Sphinx rewrites it on every build; index.html is only a redirect
    if (stamp if stamp.is_file() else index).stat().st_mtime < CONFIG.stat().st_mtime:
        pytest.skip("_build/html is older than _config.yml (make book)")
    return sorted(HTML.rglob("*.html"))


TAG = re.compile(r"<(script|link)\b[^>]*>", re.I)
ATTR = re.compile(r"""\b(src|href)\s*=\s*["']([^"']+)["']""", re.I)


def test_built_html_loads_nothing_from_the_network():
    offenders = {}
    for page in _built_pages():
        for tag in TAG.finditer(page.read_text(encoding="utf-8", errors="replace")):
            text = tag.group(0)
            if tag.group(1).lower() == "link" and not re.search(
                r"""rel\s*=\s*["'][^"']*(stylesheet|preload|modulepreload|icon|manifest)""", text, re.I
            ):
                continue  # <link rel="next" ...> and the like are navigation, not resources
            for _, url in ATTR.findall(text):
                if _is_remote(url):
                    offenders.setdefault(url, []).append(str(page.relative_to(HTML)))
    report = "\n".join(f"  {url}  ({len(p)} pages, e.g. {p[0]})" for url, p in sorted(offenders.items()))
    assert not offenders, "the built HTML loads these from the network:\n" + report


def test_built_chapters_have_launch_and_download_buttons():
    # Notebook pages only: a plain MyST page (glossary, references) has no notebook to launch.
    pages = [p for p in _built_pages() if p.parent.name == "book" and (ROOT / "book" / f"{p.stem}.ipynb").exists()]
    config = _config()
    org_repo = urlsplit(config["repository"]["url"]).path.strip("/")
    assert pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        stem = page.stem
        assert f"colab.research.google.com/github/{org_repo}/blob/" in html and f"{stem}.ipynb" in html, page
        assert f"mybinder.org/v2/gh/{org_repo}/" in html, page
        assert f"_sources/book/{stem}.ipynb" in html, f"{page}: no .ipynb download"
