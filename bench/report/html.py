"""report.html: the markdown report as one page with figures embedded, openable without a server."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 0 3px; } .missing { color: #a00; font-style: italic; }
"""

_IMG = re.compile(r'<img alt="([^"]*)" src="([^"]+)"\s*/?>')


def _embed(run_dir: Path, match: re.Match[str]) -> str:
    alt, src = match.group(1), html.unescape(match.group(2))
    path = run_dir / src
    if src.startswith(("data:", "http:", "https:")):
        return match.group(0)
    if not path.is_file():
        return (
            f'<p class="missing">figure {html.escape(src)} is missing from '
            f"{html.escape(run_dir.name)}/</p>"
        )
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def write(md_text: str, run_dir: Path, title: str) -> Path:
    """Convert the report's markdown, embed every local figure as a data URI, write atomically."""
    body = markdown.markdown(md_text, extensions=["tables", "toc"], output_format="html")
    body = _IMG.sub(lambda m: _embed(run_dir, m), body)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta '
        f'charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
    out = run_dir / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
