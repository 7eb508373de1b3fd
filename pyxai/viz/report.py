"""A self-contained HTML report: one file, every image embedded as a PNG data URI.

    html = report.render(title, settings, methods_table, images_table, figures)
    Path("report.html").write_text(html)

``figures`` are (caption, PNG bytes) pairs; images wider than :data:`PAGE_WIDTH` pixels are refused
(make them at a lower dpi) so that nothing overflows the page, whose width the CSS fixes.
"""

from __future__ import annotations

import base64
import html
import struct
from typing import Any

#: the page's content width in CSS pixels (``main { max-width }``)
PAGE_WIDTH = 1100

_CSS = f"""
body {{ font-family: system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }}
main {{ max-width: {PAGE_WIDTH}px; margin: 0 auto; padding: 16px; box-sizing: border-box; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; max-width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
figure {{ margin: 8px 0 16px; max-width: 100%; }}
figure img {{ max-width: 100%; height: auto; display: block; }}
figcaption {{ font-size: 12px; color: #555; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
"""


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes; ValueError when they are not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return struct.unpack(">II", data[16:24])


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(caption: str, png: bytes) -> str:
    w, h = png_size(png)
    if w > PAGE_WIDTH:
        raise ValueError(f"figure {caption!r} is {w} px wide, more than the page ({PAGE_WIDTH} px)")
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    cap = html.escape(caption)
    return (f'<figure><img src="{uri}" width="{w}" height="{h}" alt="{cap}">'
            f"<figcaption>{cap}</figcaption></figure>")


def render(title: str, settings: dict[str, Any], methods: list[dict[str, Any]], method_columns: list[str],
           images: list[dict[str, Any]], image_columns: list[str], figures: list[tuple[str, bytes]],
           notes: str = "") -> str:
    """The report page as one HTML string.

    Args:
        title: page title.
        settings: name -> value of every setting used (shown as a list).
        methods, method_columns: the method table (one row per method) and its columns.
        images, image_columns: the per-image table (true / predicted class, score, target).
        figures: (caption, PNG bytes), embedded in order.
        notes: a paragraph under the method table (what the metrics mean).
    """
    items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                    for k, v in settings.items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Methods</h2>", _table(methods, method_columns),
        f"<p>{html.escape(notes)}</p>" if notes else "",
        "<h2>Images</h2>", _table(images, image_columns),
        "<h2>Attributions</h2>", *(_figure(c, p) for c, p in figures),
        "<h2>Settings</h2>", f"<dl>{items}</dl>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)
