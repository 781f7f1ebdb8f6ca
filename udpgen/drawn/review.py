"""Review of hand-drawn cut-outs (``udpgen matte-review``): list, scribble, re-matte, accept/reject.

A matte output folder (``udpgen matte --out DIR``) holds the RGBA cut-outs and ``matte.json`` (per image:
input path, its path relative to INPUT ``rel``, output path relative to DIR, confidence; for an image whose
matte failed, the error and the ``target`` path a re-run writes). The functions here work on that folder;
:func:`make_server` puts them behind a loopback-only HTTP server with one page, failed images first (a
scribble and a re-run may rescue them), then the rest lowest confidence first.

Names from the client are never used as paths: only the ``output`` names this module listed are accepted.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from udpgen.errors import UdpgenError
from udpgen.io.atomic import write_bytes_atomic

__all__ = ["ReviewItem", "list_items", "marker_path", "save_markers", "rematte", "record_decision",
           "read_decisions", "decisions_by_input", "make_server", "DECISIONS", "LOOPBACK"]

DECISIONS = "review.json"
LOOPBACK = ("127.0.0.1", "localhost")
_PNG_URL = "data:image/png;base64,"
MAX_BODY = 64 << 20  # bytes of one POST: a scribble PNG of a very large drawing, base64
_LOCK = threading.Lock()


@dataclass
class ReviewItem:
    """One cut-out: ``name`` its path relative to the matte folder (the id the client sends back),
    ``input`` the source image, ``rel`` the source relative to INPUT, ``confidence`` in [0, 1]; for an
    image whose matte failed, ``confidence`` None and ``error`` the message (``name`` is where a re-run
    writes its cut-out)."""
    name: str
    input: Path
    rel: str
    confidence: float | None
    error: str | None = None


def _order(item: ReviewItem) -> tuple:
    """Failed first, then lowest confidence first."""
    return item.confidence is not None, item.confidence or 0.0, item.name


def list_items(out_dir: Path, input_dir: Path | None = None) -> list[ReviewItem]:
    """Items of a matte output folder: failed images first (with their error), then lowest confidence first.
    ``input_dir`` (INPUT given to ``udpgen matte``) overrides the recorded input paths: input_dir / rel.
    Raises UdpgenError when ``out_dir`` has no readable matte.json."""
    meta = out_dir / "matte.json"
    try:
        rows = json.loads(meta.read_text("utf-8"))["results"]
    except FileNotFoundError:
        raise UdpgenError(f"{meta}: not found; is {out_dir} the --out folder of `udpgen matte`?") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UdpgenError(f"{meta}: unreadable ({e})") from None
    items = []
    for r in rows:
        if not isinstance(r, dict) or not r.get("input"):
            continue
        rel = r.get("rel") or Path(r["input"]).name
        src = input_dir / rel if input_dir is not None else Path(r["input"])
        if r.get("output") and r.get("confidence") is not None:
            items.append(ReviewItem(str(r["output"]), src, rel, float(r["confidence"])))
        else:  # failed (matte.json of older versions: no target, the message only in the notes)
            notes = [n for n in r.get("notes") or [] if isinstance(n, str)]
            error = r.get("error") or next((n.removeprefix("failed: ") for n in notes if n.startswith("failed: ")),
                                           "failed")
            items.append(ReviewItem(str(r.get("target") or Path(rel).with_suffix(".png").as_posix()), src, rel,
                                    None, str(error)))
    items.sort(key=_order)
    return items


def marker_path(markers_dir: Path, item: ReviewItem) -> Path:
    """Where ``udpgen handdrawn --markers`` / ``udpgen matte --markers`` look for this item's scribbles."""
    return markers_dir / Path(item.rel).with_suffix(".png")


def save_markers(markers_dir: Path, item: ReviewItem, png: bytes) -> Path:
    """Write the scribble PNG ``png`` atomically at :func:`marker_path`. Raises UdpgenError (and writes
    nothing) when it is not a PNG or not the size of the input, which handdrawn would refuse later."""
    import cv2
    import numpy as np
    from PIL import Image

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) if png[:8] == b"\x89PNG\r\n\x1a\n" else None
    if img is None:
        raise UdpgenError(f"{item.name}: the markers are not a PNG")
    try:
        with Image.open(item.input) as im:
            w, h = im.size  # header only; EXIF rotation aside, what read_image returns
    except Exception as e:  # noqa: BLE001 - unreadable, truncated, a decompression bomb: one message
        raise UdpgenError(f"{item.name}: its input {item.input} cannot be read ({e})") from None
    if img.shape[:2] != (h, w):
        raise UdpgenError(f"{item.name}: markers are {img.shape[1]}x{img.shape[0]}, the image is {w}x{h}")
    path = marker_path(markers_dir, item)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, png)
    return path


def rematte(out_dir: Path, markers_dir: Path, item: ReviewItem, settings=None) -> float:
    """Matte ``item``'s input again with its markers (when it has some) and replace its cut-out atomically;
    update its confidence in matte.json (a failed item becomes a cut-out). Returns the new confidence.
    Raises UdpgenError (the item and its cut-out unchanged) when the input is unreadable or the matte
    still holds no character."""
    from udpgen.drawn.matting import MattingSettings, alpha_is_meaningful, matte, require_character
    from udpgen.io.images import read_image, write_png_atomic

    image = read_image(item.input)
    markers = None
    mpath = marker_path(markers_dir, item)
    if mpath.is_file():
        markers = read_image(mpath)
        if markers.shape[:2] != image.shape[:2]:
            raise UdpgenError(f"{mpath}: markers are {markers.shape[1]}x{markers.shape[0]}, "
                              f"the image is {image.shape[1]}x{image.shape[0]}")
    res = matte(image, markers, settings or MattingSettings())
    require_character(res.rgba, alpha_is_meaningful(image))
    write_png_atomic(out_dir / item.name, res.rgba)
    meta = out_dir / "matte.json"
    with _LOCK:  # two re-runs at once must not lose each other's confidence
        doc = json.loads(meta.read_text("utf-8"))
        for r in doc["results"]:
            if r.get("output") == item.name or (not r.get("output") and r.get("rel") == item.rel):
                r.update(output=item.name, confidence=round(res.confidence, 4), error=None, notes=res.notes,
                         factors=res.factors)
        doc["results"].sort(key=lambda r: (r.get("confidence") is not None, r.get("confidence") or 0.0,
                                           str(r.get("input"))))
        write_bytes_atomic(meta, json.dumps(doc, indent=1).encode("utf-8"))
    item.confidence, item.error = round(res.confidence, 4), None
    return item.confidence


def read_decisions(out_dir: Path) -> dict[str, str]:
    """{item name: "accept" | "reject"} from out_dir/review.json ({} when there is none)."""
    try:
        return dict(json.loads((out_dir / DECISIONS).read_text("utf-8")))
    except FileNotFoundError:
        return {}



def decisions_by_input(out_dir: Path) -> dict[str, str]:
    """{image path relative to the INPUT of ``udpgen matte``: "accept" | "reject"}, the decisions of
    out_dir/review.json keyed as ``udpgen handdrawn`` finds its files (the same INPUT). Raises UdpgenError
    when ``out_dir`` is not a matte output folder."""
    decided = read_decisions(out_dir)
    return {Path(i.rel).as_posix(): decided[i.name] for i in list_items(out_dir) if i.name in decided}


def record_decision(out_dir: Path, item: ReviewItem, decision: str) -> dict[str, str]:
    """Record accept/reject for ``item`` in out_dir/review.json (atomic, one file for the folder)."""
    if decision not in ("accept", "reject"):
        raise UdpgenError(f"decision: {decision!r} is not accept or reject")
    with _LOCK:
        d = read_decisions(out_dir)
        d[item.name] = decision
        write_bytes_atomic(out_dir / DECISIONS, json.dumps(d, indent=1, sort_keys=True).encode("utf-8"))
    return d


def _page() -> bytes:
    return _PAGE.encode("utf-8")


# The one page: list (lowest confidence first) | canvas (input, cut-out over it, scribble layer).
_PAGE = r"""<!doctype html><meta charset="utf-8"><title>udpgen matte review</title><style>
body{font:14px sans-serif;display:flex;gap:12px;margin:8px}#list{width:260px;overflow:auto;max-height:95vh}
.it{display:flex;gap:6px;align-items:center;cursor:pointer;padding:3px;border-bottom:1px solid #ddd}
.it img{width:56px;height:56px;object-fit:contain;background:repeating-conic-gradient(#bbb 0 25%,#eee 0 50%) 0 0/12px 12px}
.it.sel{background:#def}#stage{position:relative}canvas{position:absolute;left:0;top:0}#ui{margin-bottom:6px}
.accept{color:green}.reject{color:#b00}.failed{background:#fee}.err{color:#b00;font-size:12px}</style>
<div id="list"></div><div><div id="ui"><b id="title">click a cut-out</b>
<label><input type="radio" name="pen" value="fg" checked> green = character</label>
<label><input type="radio" name="pen" value="bg"> red = background</label>
<button id="clear">clear</button><button id="rerun">re-run</button>
<button id="accept">accept</button><button id="reject">reject</button> <span id="msg"></span></div>
<div id="stage"><canvas id="base"></canvas><canvas id="paint"></canvas></div></div>
<script>
let cur=null,drawing=false,byName={},noInput=false;const base=document.getElementById('base'),paint=document.getElementById('paint');
const msg=t=>document.getElementById('msg').textContent=t;
// Failed images come first: no cut-out, their error shown; the input (when readable) can take scribbles.
async function load(){const r=await fetch('/api/items');const items=await r.json();const L=document.getElementById('list');
L.innerHTML='';byName={};for(const it of items){byName[it.name]=it;const d=document.createElement('div');d.className='it'+(cur===it.name?' sel':'');
d.dataset.name=it.name;const src=(it.error?'/input':'/cutout')+'?name='+encodeURIComponent(it.name)+'&t='+Date.now();
d.innerHTML='<img src="'+src+'" alt=""><span></span>';const sp=d.querySelector('span');
sp.textContent=(it.error?'failed ':it.confidence.toFixed(3)+' ')+it.name+(it.decision?' ['+it.decision+']':'');
if(it.error){d.classList.add('failed');d.dataset.failed='1';const e=document.createElement('div');e.className='err';
e.textContent=it.error;sp.appendChild(e);}
if(it.decision)d.classList.add(it.decision);d.onclick=()=>open_(it.name);L.appendChild(d);}}
function img(src){return new Promise((ok,no)=>{const i=new Image();i.onload=()=>ok(i);i.onerror=no;i.src=src;});}
async function drawBase(){const q='?name='+encodeURIComponent(cur)+'&t='+Date.now();const it=byName[cur]||{};
const a=await img('/input'+q).catch(()=>null);const b=it.error?null:await img('/cutout'+q).catch(()=>null);
noInput=!a;const g=base.getContext('2d');g.clearRect(0,0,base.width,base.height);if(!a)return;
for(const c of [base,paint]){if(c.width!==a.naturalWidth||c.height!==a.naturalHeight){c.width=a.naturalWidth;c.height=a.naturalHeight;}}
g.globalAlpha=b?0.35:1;g.drawImage(a,0,0);g.globalAlpha=1;if(b)g.drawImage(b,0,0);document.getElementById('stage').style.width=base.width+'px';
document.getElementById('stage').style.height=base.height+'px';}
async function open_(name){cur=name;document.getElementById('title').textContent=name;
paint.getContext('2d').clearRect(0,0,paint.width,paint.height);await drawBase();
paint.getContext('2d').clearRect(0,0,paint.width,paint.height);const it=byName[name]||{};
msg(it.error?'failed: '+it.error+(noInput?'':' (paint scribbles, re-run)'):'');load();}
function pos(e){const r=paint.getBoundingClientRect();return[(e.clientX-r.left)*paint.width/r.width,(e.clientY-r.top)*paint.height/r.height];}
let last=null;
paint.addEventListener('pointerdown',e=>{if(!cur)return;drawing=true;last=pos(e);stroke(last);});
paint.addEventListener('pointermove',e=>{if(drawing){const p=pos(e);stroke(p);last=p;}});
window.addEventListener('pointerup',()=>{drawing=false;last=null;});
function stroke(p){const g=paint.getContext('2d');const fg=document.querySelector('input[name=pen]:checked').value==='fg';
g.strokeStyle=g.fillStyle=fg?'rgb(0,255,0)':'rgb(255,0,0)';g.lineWidth=6;g.lineCap='round';g.imageSmoothingEnabled=false;
g.beginPath();g.moveTo(last[0],last[1]);g.lineTo(p[0],p[1]);g.stroke();}
document.getElementById('clear').onclick=()=>paint.getContext('2d').clearRect(0,0,paint.width,paint.height);
async function post(url,body){const r=await fetch(url,{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(body)});
const j=await r.json();if(!r.ok)throw new Error(j.error);return j;}
document.getElementById('rerun').onclick=async()=>{if(!cur)return;msg('re-running...');
try{const j=await post('/api/rerun',{name:cur,markers:noInput?null:paint.toDataURL('image/png')});await load();await drawBase();
msg('confidence '+j.confidence.toFixed(3));document.body.dataset.rerun=String(Date.now());load();}catch(e){msg(e.message);}};
for(const d of ['accept','reject'])document.getElementById(d).onclick=async()=>{if(!cur)return;
try{await post('/api/decide',{name:cur,decision:d});msg(d+'ed');document.body.dataset.decided=d;load();}catch(e){msg(e.message);}};
load();
</script>
"""


def make_server(out_dir: Path, markers_dir: Path, input_dir: Path | None = None,
                host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer on ``host``:``port`` (loopback only; port 0 = any free port) serving the review
    page and its JSON endpoints. Raises UdpgenError for another host or a port in use."""
    if host not in LOOPBACK:
        raise UdpgenError(f"host: {host!r} refused; the review server binds to 127.0.0.1 only")
    items = {i.name: i for i in list_items(out_dir, input_dir)}
    order = list(items)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet: the CLI prints the URL, nothing per request
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj) -> None:
            self._send(code, json.dumps(obj).encode("utf-8"))

        def _item(self, name) -> ReviewItem | None:
            item = items.get(name) if isinstance(name, str) else None
            if item is None:
                self._json(404, {"error": "unknown item"})
            return item

        def do_GET(self):
            from urllib.parse import parse_qs, urlparse

            u = urlparse(self.path)
            q = parse_qs(u.query)
            if u.path == "/":
                return self._send(200, _page(), "text/html; charset=utf-8")
            if u.path == "/api/items":
                dec = read_decisions(out_dir)
                rows = sorted((items[n] for n in order), key=_order)
                return self._json(200, [{"name": i.name, "confidence": i.confidence, "error": i.error,
                                         "decision": dec.get(i.name)} for i in rows])
            if u.path in ("/cutout", "/input"):
                item = self._item(q.get("name", [None])[0])
                if item is None:
                    return
                path = out_dir / item.name if u.path == "/cutout" else item.input
                try:
                    data = path.read_bytes()
                    if u.path == "/input" and (path.suffix.lower() != ".png" or item.error is not None):
                        # what matte reads (a failed input may be an unreadable or odd one: a 404, not a crash)
                        from udpgen.io.images import read_image
                        import cv2
                        img = read_image(path)
                        data = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA if img.shape[2] == 4
                                                                 else cv2.COLOR_RGB2BGR))[1].tobytes()
                except (OSError, UdpgenError) as e:
                    return self._json(404, {"error": str(e)})
                return self._send(200, data, "image/png")
            self._json(404, {"error": "not found"})

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length", "0"))
                if not 0 <= n <= MAX_BODY:
                    raise ValueError(f"Content-Length {n} not in 0..{MAX_BODY}")
                body = json.loads(self.rfile.read(n) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                return self._json(400, {"error": f"bad request: {e}"})
            item = self._item(body.get("name"))
            if item is None:
                return
            try:
                if self.path == "/api/rerun":
                    url = body.get("markers", "")
                    if url is not None and (not isinstance(url, str) or not url.startswith(_PNG_URL)):
                        return self._json(400, {"error": "markers: expected a PNG data URL (or null: "
                                                         "re-run with the saved ones)"})
                    if url is not None:
                        save_markers(markers_dir, item, base64.b64decode(url[len(_PNG_URL):], validate=True))
                    conf = rematte(out_dir, markers_dir, item)
                    return self._json(200, {"name": item.name, "confidence": conf})
                if self.path == "/api/decide":
                    record_decision(out_dir, item, body.get("decision"))
                    return self._json(200, {"name": item.name, "decision": body.get("decision")})
            except (UdpgenError, OSError, ValueError) as e:
                return self._json(400, {"error": str(e)})
            self._json(404, {"error": "not found"})

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise UdpgenError(f"port {port}: cannot listen on {host} ({e.strerror or e})") from None
