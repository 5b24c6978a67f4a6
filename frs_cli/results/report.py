"""`frs report`: one self-contained HTML page for reviewing a scan's appearances.

Images are embedded (data: URIs), there are no external resources, and the page works
from a USB stick. Per appearance it shows the face crop beside the enrolment photo(s)
it matched, identity, distance, margin, times, source and the command that opens that
moment; it groups by identity, sorts by time, filters by identity and distance, keeps
a reviewer's verdict per row and exports the verdicts as CSV. A timeline per source
shows when each identity was on screen.

For tests and automation the page reads its URL fragment:
`#identity=NAME&maxdist=0.5&verdict=ROW:confirmed,ROW:rejected&export=1` applies the
filters and verdicts and writes the export into `<pre id="export">`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from frs_cli import files
from frs_cli.errors import InputError, UsageError
from frs_cli.faces import families
from frs_cli.records import AnalysisConfig

THUMB = 160


MAX_IMAGE_BYTES = 50 << 20  # a picture frs embeds: crops and enrolment photos are far smaller
MAX_IMAGE_PIXELS = 40_000_000  # ... and none holds more pixels than a 7680x5120 frame
MAX_SECONDS = 10_000_000.0  # no footage runs for 115 days: a time beyond is not a time


def read_results(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows written by `frs scan` as CSV or JSON lines (or a JSON array): the matched
    ones, and with `--unmatched` the unmatched ones that carry a person label; and why
    each row that cannot be used was left out (one line each: the others go on)."""
    from frs_cli.results.writers import read_rows

    why = files.regular(path)
    if why is not None:  # a FIFO would block the report
        raise UsageError(f"cannot read {files.printable(str(path))}: {why}")
    problems: list[str] = []
    rows = []
    for row in read_rows(path, people=True, problems=problems):
        problem = _time_problem(row)
        if problem is None:
            rows.append(row)
        else:
            problems.append(f"the row of {row['source']!r} at {row.get('start_s')!r} {problem}")
    return rows, problems


def _time_problem(row: dict[str, Any]) -> str | None:
    for key in ("start_s", "end_s"):
        value = row.get(key)
        if not isinstance(value, int | float) or not 0 <= value <= MAX_SECONDS:
            return f"has {key} {value!r}, not a time in the file"
    if row["end_s"] < row["start_s"]:
        return "ends before it starts"
    best = row.get("best_s")
    if best is not None and not row["start_s"] <= best <= row["end_s"]:
        return f"has best_s {best!r} outside the appearance"
    return None


def scan_record(results: Path, watchlist: Path) -> dict[str, Any] | None:
    """The audit record of the scan that wrote `results`, latest first: one whose output
    is this file by name (absolute, or relative to the folder that scan ran in: never to
    this one) and still has the content it wrote; else one whose output had this file's
    content (a copy, or the file moved); else one whose output is this file by name (the
    rows were edited since)."""
    from frs_cli.watchlist import audit

    if not watchlist.exists():
        return None
    scans = [e for e in reversed(audit.read(watchlist)) if e.get("command") == "scan"]
    now = audit.fast_fingerprint(results)

    def same_content(entry: dict[str, Any]) -> bool:
        written = entry.get("output_fingerprint")
        return (
            isinstance(written, dict)
            and "fingerprint" in now
            and (
                (written.get("fingerprint"), written.get("size"))
                == (now["fingerprint"], now["size"])
            )
        )

    def same_name(entry: dict[str, Any]) -> bool:
        named = recorded_path(entry, entry.get("output"))
        return named is not None and files.same_file(named, results)

    for test in (
        lambda e: same_name(e) and same_content(e),
        same_content,
        same_name,
    ):
        found = next((e for e in scans if test(e)), None)
        if found is not None:
            return found
    return None


def recorded_path(entry: dict[str, Any], path: Any) -> str | None:
    """A path as a record gives it, made absolute with the folder the command ran in
    (None: not a path, or relative in a record that does not say where it ran)."""
    if not isinstance(path, str) or not path or path == "stdout":
        return None
    if os.path.isabs(path):
        return path
    cwd = entry.get("cwd")
    return os.path.join(cwd, path) if isinstance(cwd, str) else None


def scan_rule(record: dict[str, Any] | None) -> str | None:
    """The alert rule of a scan's audit record (`scan_record`), in words; None if not known."""
    from frs_cli.accuracy.calibration import Rule

    if record is None or not isinstance(record.get("rule"), dict):
        return None
    try:
        return Rule.from_dict(record["rule"]).describe()
    except (TypeError, ValueError, KeyError):
        return None


def footage(row: dict[str, Any], record: dict[str, Any] | None) -> str:
    """The file a row's `source` named when the scan ran, identified by the fingerprint
    the scan recorded, never by resolving the name against the current folder (another
    folder's demo.mp4 is another film). InputError (path, why) when it cannot be had."""
    source = row["source"]
    if record is None:
        raise InputError(
            source,
            "no record of the scan that wrote these rows in the watchlist's audit trail, so "
            "which file it read cannot be known; give the scan's --watchlist",
        )
    path = recorded_path(record, source)
    if path is None:
        raise InputError(source, "the scan's record does not say which folder it ran in")
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    inputs = record.get("inputs")
    scanned = [
        e
        for e in (inputs if isinstance(inputs, list) else [])
        if isinstance(e, dict) and e.get("path") == source
    ]
    if not scanned or "fingerprint" not in scanned[-1]:
        raise InputError(path, "not a file the scan that wrote these rows read")
    from frs_cli.watchlist.audit import fast_fingerprint

    now = fast_fingerprint(path)
    if (now.get("size"), now.get("fingerprint")) != (
        scanned[-1].get("size"),
        scanned[-1].get("fingerprint"),
    ):
        raise InputError(path, "is not the file the scan read (its content differs)")
    return path


def analysis(record: dict[str, Any] | None, source: str) -> AnalysisConfig:
    """The analysis settings the scan used for `source` (its --min-face, --roi, model,
    rates, and a --settings camera's), so that a clip finds the faces the scan found."""
    base = AnalysisConfig()
    if record is None or not isinstance(record.get("analysis"), dict):
        return base
    said = dict(record["analysis"])
    inputs = record.get("inputs")
    for entry in inputs if isinstance(inputs, list) else []:
        if isinstance(entry, dict) and entry.get("path") == source:
            said.update({k: entry[k] for k in ("min_face", "rois") if k in entry})
    try:
        config = AnalysisConfig(
            model=str(said.get("model", base.model)),
            encoder=str(said.get("encoder", base.encoder)),
            min_face=int(said.get("min_face", base.min_face)),
            sample_fps=float(said.get("sample_fps", base.sample_fps)),
            detect_fps=float(said.get("detect_fps", base.detect_fps)),
            quick_fps=float(said.get("quick_fps", base.quick_fps)),
            exhaustive=bool(said.get("exhaustive", False)),
            rois=tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in said.get("rois", ())),
        )
    except (TypeError, ValueError):
        return base
    sane = (
        config.model in ("", "hog", "cnn", "scrfd")
        and config.encoder in families.NAMES
        and 8 <= config.min_face <= 4000
        and all(0.05 <= r <= 240 for r in (config.sample_fps, config.detect_fps, config.quick_fps))
    )
    return config if sane else base


def allowed_pictures(record: dict[str, Any] | None) -> str | None:
    """The folder whose pictures a page may embed: the scan's --crops, as it recorded it."""
    if record is None:
        return None
    folder = record.get("crops")
    return folder if isinstance(folder, str) and os.path.isabs(folder) else None


def picture(path: Any, record: dict[str, Any] | None) -> str | None:
    """A crop or frame view of a row, as an absolute path, if it lies in the scan's
    --crops folder (a results file is data: it cannot make the page embed any picture on
    this machine); None otherwise."""
    folder = allowed_pictures(record)
    if folder is None or not isinstance(path, str) or not path:
        return None
    assert record is not None
    named = recorded_path(record, path)
    if named is None or not files.within(named, folder):
        return None
    return named


def data_uri(path: str | Path | None, size: int = THUMB) -> str | None:
    """A JPEG thumbnail of a regular file of sane size and pixel count, as a data: URI;
    None for anything else (a FIFO would hang the page's making, a 68-byte PNG claiming
    30000x30000 pixels would fill the memory)."""
    if not path or files.regular(path) is not None:
        return None
    try:
        if os.stat(path).st_size > MAX_IMAGE_BYTES:
            return None
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                return None
            img = opened.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def build(
    rows: list[dict[str, Any]],
    enrolment: dict[str, list[str]],
    title: str,
    rule: str | None = None,
    pictures: Callable[[Any], str | None] = lambda path: None,
) -> str:
    """The page. `enrolment` maps identity -> enrolment photo paths; `rule` is the scan's
    alert rule in words (`scan_rule`), None when it is not known; `pictures` maps a row's
    crop or frame_view to the file to embed (None: none)."""
    from frs_cli.timecode import format_tc

    items = []

    def order(r: dict[str, Any]) -> tuple[str, str, str, float]:
        return (r.get("person") or "", r["identity"] or "", r["source"], r["start_s"])

    for k, r in enumerate(sorted(rows, key=order)):
        items.append(
            {
                "row": k + 1,
                "identity": r["identity"],
                "person": r.get("person"),
                "source": r["source"],
                "track": r.get("track_id"),
                "start": r["start_s"],
                "end": r["end_s"],
                "start_tc": format_tc(r["start_s"]),
                "end_tc": format_tc(r["end_s"]),
                "start_wall": r.get("start_wall"),
                "end_wall": r.get("end_wall"),
                "distance": r["distance"],
                "margin": r.get("margin"),
                "face_px": r.get("face_px"),
                "face_band": r.get("face_band"),
                "crop": data_uri(pictures(r.get("crop")), 200),
                "frame": data_uri(pictures(r.get("frame_view")), 640),
                "ffplay": f"ffplay -ss {r['start_s']:.3f} {_shell_quote(r['source'])}",
            }
        )
    photos = {
        name: [uri for uri in (data_uri(p) for p in paths[:3]) if uri]
        for name, paths in enrolment.items()
        if any(i["identity"] == name for i in items)
    }
    # Inside <script>, "<!--" or "</script" in a name would end or hide the data block:
    # JSON's \u escapes keep every <, > and & out of the page's markup.
    payload = (
        json.dumps({"items": items, "photos": photos})
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    said = (
        f"this scan alerted at {rule}"
        if rule
        else "the rule this scan used is not in the watchlist's audit trail: see the scan's "
        "--summary or `frs audit`"
    )
    return (
        PAGE.replace("{{TITLE}}", html.escape(title))
        .replace("{{RULE}}", html.escape(said))
        .replace("{{DATA}}", payload)
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def write(path: Path, page: str) -> None:
    """The page holds faces: written owner-only, through a new file renamed over `path`."""
    files.write_output(path, page)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.15em;margin:1.2em 0 .4em}
.note{background:#fff6d6;border:1px solid #e8d48a;padding:.6em .8em;margin:.6em 0}
.controls{display:flex;gap:1.5em;align-items:center;margin:.8em 0;flex-wrap:wrap}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
img.crop{width:110px;height:110px;object-fit:cover;border:2px solid #c33}
img.enrol{width:110px;height:110px;object-fit:cover;border:2px solid #36c;margin-right:4px}
img.frame{max-width:320px;display:block;margin-top:4px}
code{font-size:12px;background:#f3f3f3;padding:1px 3px;user-select:all}
.tl{margin:.3em 0 1em} .tl text{font-size:11px} .hidden{display:none}
pre#export{background:#f6f6f6;padding:.5em;white-space:pre-wrap}
</style></head><body>
<h1>{{TITLE}}</h1>
<div class="note">Every row is a <b>candidate</b>, not an identification: a person must
compare the faces and decide. Distance: lower is closer ({{RULE}}). Margin: how much
farther the next identities were (the mean of the next 8); none where the watchlist has
no other identity. Times are seconds into each file, and the time of day where the
file's clock is known.</div>
<div class="controls">
<label>Identity <select id="f-identity"><option value="">all</option></select></label>
<label>Distance at most <input id="f-maxdist" type="number" step="0.01" min="0" max="2" value="2"></label>
<span id="shown"></span>
<button id="export-btn">Export verdicts (CSV)</button>
</div>
<h2>Timeline</h2><div id="timelines"></div>
<div id="groups"></div>
<pre id="export" class="hidden"></pre>
<script type="application/json" id="data">{{DATA}}</script>
<script>
// Everything from the results is put on the page as text nodes and attribute values,
// never parsed as HTML: a file or identity name cannot add markup or run script.
const DATA = JSON.parse(document.getElementById('data').textContent);
const items = DATA.items, photos = DATA.photos;
const verdicts = {};
const fmt = v => v == null || v === '' || isNaN(Number(v)) ? '' : Number(v).toFixed(4);
function el(tag, attrs, ...children) {
  const svg = ['svg', 'rect', 'text', 'title'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}
function img(cls, alt, uri) {
  // Only the data: URIs frs itself embeds are shown.
  return typeof uri === 'string' && uri.startsWith('data:image/jpeg;base64,') ? el('img', {class: cls, alt: alt, src: uri}) : null;
}
// Rows are grouped by person where the scan labelled people (--unmatched: the same
// person across tracks and files, listed or not), else by identity.
const groupOf = i => i.person || i.identity || '(not on the watchlist)';
const named = i => i.identity || '(not on the watchlist)';
function heading(key, list) {
  if (!list[0].person) return key;
  const who = [...new Set(list.map(named))].sort().join(', ');
  return `${key} \\u00b7 ${who}`;
}
function build() {
  const sel = document.getElementById('f-identity');
  [...new Set(items.map(named))].sort().forEach(n => sel.append(el('option', {value: n}, n)));
  const groups = document.getElementById('groups');
  const byKey = {};
  items.forEach(i => (byKey[groupOf(i)] = byKey[groupOf(i)] || []).push(i));
  for (const key of Object.keys(byKey).sort()) {
    const table = el('table', {}, el('tr', {}, ...['found', 'enrolled', 'match', 'when, where', 'verdict'].map(h => el('th', {}, h))));
    for (const i of byKey[key].sort((a, b) => String(a.source).localeCompare(String(b.source)) || a.start - b.start)) {
      const radios = ['confirmed', 'rejected', 'unsure'].map(v => el('label', {},
        el('input', {type: 'radio', name: `v${i.row}`, value: v, 'data-row': i.row}), ` ${v} `));
      const crop = img('crop', 'face found', i.crop);
      const enrolled = i.identity ? (photos[i.identity] || []).map(u => img('enrol', `enrolment photo of ${i.identity}`, u)).filter(Boolean) : [];
      table.append(el('tr', {class: 'item', id: `row-${i.row}`, 'data-row': i.row, 'data-identity': named(i), 'data-distance': i.identity ? i.distance : ''},
        el('td', {}, crop || '(no crop: scan with --crops)', img('frame', 'frame', i.frame)),
        el('td', {}, ...(enrolled.length ? enrolled : [i.identity ? '(enrolment photo not found)' : '(not on the watchlist)'])),
        el('td', {}, el('b', {}, named(i)), ...(i.person ? [el('br'), `person ${i.person}`] : []), el('br'), `distance ${fmt(i.distance)}`, el('br'), i.margin == null ? 'margin: none (no other identity)' : `margin ${fmt(i.margin)}`, ...(i.face_px == null ? [] : [el('br'), `face ${i.face_px} px` + (i.face_band ? ` (band ${i.face_band})` : '')])),
        el('td', {}, `${i.start_tc} \\u2013 ${i.end_tc}`, ...(i.start_wall ? [el('br'), el('span', {class: 'wall'}, `${i.start_wall} \\u2013 ${i.end_wall}`)] : []), el('br'), i.source, el('br'), el('code', {}, i.ffplay)),
        el('td', {}, ...radios)));
    }
    groups.append(el('section', {class: 'group', 'data-identity': key}, el('h2', {}, heading(key, byKey[key])), table));
  }
  document.querySelectorAll('input[type=radio]').forEach(r => r.addEventListener('change', e => {
    verdicts[e.target.dataset.row] = e.target.value; }));
  timelines();
}
function timelines() {
  const box = document.getElementById('timelines');
  const bySource = {};
  items.forEach(i => (bySource[i.source] = bySource[i.source] || []).push(i));
  for (const [src, list] of Object.entries(bySource)) {
    const names = [...new Set(list.map(groupOf))].sort();
    const end = Math.max(...list.map(i => Number(i.end))) || 1, W = 700, L = 150, H = 18;
    const svg = el('svg', {class: 'tl', width: W + L + 10, height: names.length * H + 22, role: 'img', 'aria-label': `timeline of ${src}`});
    names.forEach((n, k) => {
      svg.append(el('text', {x: 0, y: k * H + 13}, n));
      list.filter(i => groupOf(i) === n).forEach(i => {
        const x = L + i.start / end * W, w = Math.max(2, (i.end - i.start) / end * W);
        svg.append(el('rect', {x: x, y: k * H + 3, width: w, height: H - 6, fill: '#c33'}, el('title', {}, `${i.start_tc}-${i.end_tc}`)));
      });
    });
    svg.append(el('text', {x: L, y: names.length * H + 16}, '0 s'), el('text', {x: L + W - 40, y: names.length * H + 16}, `${end.toFixed(1)} s`));
    box.append(el('div', {}, el('b', {}, src)), svg);
  }
}
function applyFilters() {
  const who = document.getElementById('f-identity').value;
  const maxd = parseFloat(document.getElementById('f-maxdist').value);
  let shown = 0;
  document.querySelectorAll('tr.item').forEach(tr => {
    const ok = (!who || tr.dataset.identity === who) && !(parseFloat(tr.dataset.distance) > maxd);
    tr.classList.toggle('hidden', !ok); shown += ok; });
  document.querySelectorAll('section.group').forEach(s => s.classList.toggle('hidden',
    !s.querySelector('tr.item:not(.hidden)')));
  document.getElementById('shown').textContent = `${shown} of ${items.length} shown`;
}
function exportCsv() {
  // Quoted, and a cell a spreadsheet would run as a formula gets a leading apostrophe.
  const q = v => { let t = String(v ?? ''); if (/^[=+\\-@\\t\\r]/.test(t)) t = "'" + t; return `"${t.replace(/"/g, '""')}"`; };
  const lines = ['row,identity,person,source,track_id,start_tc,end_tc,distance,verdict'];
  items.forEach(i => lines.push([q(i.row), q(i.identity), q(i.person), q(i.source), q(i.track), q(i.start_tc), q(i.end_tc), q(fmt(i.distance)), q(verdicts[i.row] || '')].join(',')));
  return lines.join('\\n') + '\\n';
}
document.getElementById('export-btn').addEventListener('click', () => {
  const blob = new Blob([exportCsv()], {type: 'text/csv'});
  const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = 'verdicts.csv'; a.click();
});
build();
document.getElementById('f-identity').addEventListener('change', applyFilters);
document.getElementById('f-maxdist').addEventListener('input', applyFilters);
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get('identity')) document.getElementById('f-identity').value = hash.get('identity');
if (hash.get('maxdist')) document.getElementById('f-maxdist').value = hash.get('maxdist');
(hash.get('verdict') || '').split(',').filter(Boolean).forEach(p => {
  const [row, v] = p.split(':');
  const r = [...document.querySelectorAll('input[type=radio]')].find(x => x.name === `v${row}` && x.value === v);
  if (r) { r.checked = true; r.dispatchEvent(new Event('change')); } });
applyFilters();
if (hash.get('export')) { const e = document.getElementById('export'); e.textContent = exportCsv(); e.classList.remove('hidden'); }
</script></body></html>
"""
