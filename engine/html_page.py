"""The house style of sigtrade's HTML pages: one look, one drawing loop, nothing fetched.

Every page (the backtest's ``report.html``, the sweep's ``report.html``) is built by
:func:`page`: plotly.js is inlined once, every figure is drawn from one inline JSON
object (``#figures``), a small script records script errors into ``#js-errors`` and
adds ``#render-ok`` once every plot has drawn (and every function a page pushed onto
``window.sigtradeAfterDraw`` has run), so a headless browser can check the page.

The formatters here turn figures into the text a reader sees; ``None`` is an em dash.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

TZ = "America/New_York"
"""Times on the pages are New York times (the exchange's)."""

# ----------------------------------------------------------------------------- formatting


def esc(x: Any) -> str:
    """HTML-escape ``str(x)`` (quotes included)."""
    return html.escape(str(x), quote=True)


def pct(x: Any) -> str:
    """Signed percentage of a fraction: ``+1.23 %``."""
    return "—" if x is None else f"{x * 100:+.2f} %"


def pct_plain(x: Any) -> str:
    """Unsigned percentage of a fraction: ``1.23 %``."""
    return "—" if x is None else f"{x * 100:.2f} %"


def ratio(x: Any) -> str:
    """Two decimals: ``1.23``."""
    return "—" if x is None else f"{x:.2f}"


def usd(x: Any) -> str:
    """Dollars with cents: ``−$1,234.50``."""
    return "—" if x is None else f"{'−' if x < 0 else ''}${abs(x):,.2f}"


def integer(x: Any) -> str:
    """A whole number with thousands separators."""
    return "—" if x is None else f"{int(x):,}"


def finite(x: Any) -> float | None:
    """``float(x)`` when it is a finite number, else None."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def short_ts(iso: Any) -> str:
    """``YYYY-MM-DD HH:MM`` in New York time of a timestamp or ISO string; — when empty."""
    if iso is None or iso == "":
        return "—"
    ts = pd.Timestamp(iso)
    ts = ts.tz_convert(TZ) if ts.tz is not None else ts
    return ts.strftime("%Y-%m-%d %H:%M")


def local_index(ts: Any) -> pd.DatetimeIndex:
    """Timestamps as naive New York times (what plotly's date axes show)."""
    idx = pd.DatetimeIndex(ts)
    return idx.tz_convert(TZ).tz_localize(None) if idx.tz is not None else idx


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, value)`` of every leaf of a nested mapping, in order."""
    items: list[tuple[str, Any]] = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def facts(items: list[tuple[str, str]], el_id: str = "summary") -> str:
    """A row of labelled facts (``<dl class="facts">``)."""
    top = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in items)
    return f'<dl id="{esc(el_id)}" class="facts">{top}</dl>'


def config_details(cfg: Mapping[str, Any], title: str = "Configuration") -> str:
    """A collapsed table of every config key and value."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in flatten(cfg))
    return (
        f'<details id="config"><summary>{esc(title)}</summary>'
        f'<table id="config-table" class="data compact">{rows}</table></details>'
    )


# ----------------------------------------------------------------------------- figures

LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": 1.08, "x": 0},
    "height": 380,
}
"""Layout every figure starts from."""


def json_for_script(text: str) -> str:
    """JSON text made safe inside ``<script>``: no ``</script>`` or ``<!--`` can close or confuse it."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fig_json(fig: go.Figure) -> str:
    """A figure as JSON safe inside ``<script>``."""
    return json_for_script(str(pio.to_json(fig, validate=False)))


def data_json(obj: Any) -> str:
    """A JSON-ready object as JSON safe inside ``<script>`` (NaN refused)."""
    return json_for_script(json.dumps(obj, allow_nan=False, separators=(",", ":")))


# ----------------------------------------------------------------------------- page

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:14px;margin:16px 0 6px}
.banner{background:#b00020;color:#fff;font-weight:700;font-size:22px;text-align:center;
padding:14px;letter-spacing:.08em}
.banner small{display:block;font-weight:400;font-size:13px;letter-spacing:0}
.card{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 16px;margin:12px 0}
.facts{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}.facts dt{font-size:11px;color:#667;
text-transform:uppercase}.facts dd{margin:0;font-weight:600}
table.data{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
table.data thead th{background:#f0f2f5;position:sticky;top:0}
#metrics-table{min-width:560px}#metrics-table tbody th{font-weight:500}
.compact{font-size:12px}.compact th{text-align:left!important;color:#556}
.pos{color:#11774b}.neg{color:#b3261e}.empty{text-align:center!important;color:#889}
.note{font-size:12px;color:#667;margin:4px 0}
.scroll{max-height:520px;overflow:auto}
details summary{cursor:pointer;font-size:13px;color:#445;margin-top:8px}
#js-errors{display:none}
"""
"""The stylesheet every page shares."""

_ERROR_TRAP = """
(function(){
  var box = document.getElementById('js-errors');
  function note(msg){ var d = document.createElement('div'); d.textContent = String(msg);
    box.appendChild(d); box.style.display = 'block'; }
  window.addEventListener('error', function(e){
    note((e.message || 'error') + (e.filename ? ' @ ' + e.filename + ':' + e.lineno : '')); });
  window.addEventListener('unhandledrejection', function(e){
    note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
  window.sigtradeAfterDraw = [];
})();
"""

_DRAW = """
(function(){
  var figs = JSON.parse(document.getElementById('figures').textContent);
  var cfg = {responsive: true, displaylogo: false};
  var jobs = Object.keys(figs).map(function(id){
    var f = figs[id]; return Plotly.newPlot(id, f.data, f.layout, cfg); });
  Promise.all(jobs).then(function(){
    var ok = Object.keys(figs).every(function(id){
      return document.querySelector('#' + id + ' .main-svg') !== null; });
    if (!ok) { throw new Error('a plot did not render'); }
    return Promise.all(window.sigtradeAfterDraw.map(function(f){ return f(); }));
  }).then(function(){
    var d = document.createElement('div'); d.id = 'render-ok'; d.hidden = true;
    d.setAttribute('data-plots', String(Object.keys(figs).length));
    document.body.appendChild(d);
  });
})();
"""


def synthetic_banner(synthetic: bool) -> str:
    """The red banner of a page whose bars were generated, not recorded (empty otherwise)."""
    if not synthetic:
        return ""
    return (
        '<div class="banner" id="synthetic-banner">SYNTHETIC DATA'
        "<small>These bars were generated, not recorded: the figures say nothing about real "
        "markets.</small></div>"
    )


def page(
    title: str,
    body: str,
    figures: Mapping[str, go.Figure],
    *,
    banner: str = "",
    css: str = "",
    data: Mapping[str, Any] | None = None,
    script: str = "",
) -> str:
    """Return a self-contained HTML page.

    Parameters
    ----------
    title
        The ``<title>`` and ``<h1>``.
    body
        HTML inside ``<main>``, after the heading; holds an empty ``<div id=...>`` per figure.
    figures
        Element id -> figure, drawn once the page has loaded.
    banner
        HTML above ``<main>`` (e.g. :func:`synthetic_banner`).
    css
        Rules added to :data:`CSS`.
    data
        Element id -> JSON-ready object, embedded as ``<script type="application/json">``
        for the page's script and for tools that read the page.
    script
        The page's own JavaScript, run after plotly.js is loaded and before the figures
        are drawn (push a function returning a promise onto ``window.sigtradeAfterDraw``
        to run after they are).
    """
    figs_json = "{" + ",".join(f'"{k}":{fig_json(v)}' for k, v in figures.items()) + "}"
    blobs = "".join(
        f'<script type="application/json" id="{esc(k)}">{data_json(v)}</script>\n'
        for k, v in (data or {}).items()
    )
    own = f"<script>{script}</script>\n" if script else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}{css}</style></head>
<body>
<div id="js-errors"></div>
<script>{_ERROR_TRAP}</script>
{banner}
<main>
<h1>{esc(title)}</h1>
{body}
</main>
<script type="application/json" id="figures">{figs_json}</script>
{blobs}<script>{get_plotlyjs()}</script>
{own}<script>{_DRAW}</script>
</body></html>
"""
