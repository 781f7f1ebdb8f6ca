"""udpgen.drawn.review and `udpgen matte-review`: HTTP-level tests (urllib) against a server in a thread,
on a few synthetic drawings matted with `udpgen matte`; a headless-browser test when chromium is there."""
from __future__ import annotations

import base64
import json
import shutil
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from udpgen.cli.main import main
from udpgen.drawn.review import list_items, make_server
from udpgen.errors import UdpgenError
from udpgen.io.images import read_image


def drawing(kind: int, size: int = 96) -> np.ndarray:
    """(size, size, 3) uint8 RGB: a flat figure with a dark outline on white; kind 1 adds background clutter
    (so confidences differ)."""
    img = np.full((size, size, 3), 255, np.uint8)
    if kind == 1:
        rng = np.random.default_rng(1)
        img[:] = rng.integers(150, 256, (size, size, 3), dtype=np.uint8)
    cv2.ellipse(img, (size // 2, size // 2), (size // 4, size // 3), 0, 0, 360, (200, 60, 60), -1)
    cv2.ellipse(img, (size // 2, size // 2), (size // 4, size // 3), 0, 0, 360, (30, 20, 40), 2)
    cv2.circle(img, (size // 2, size // 5), size // 8, (250, 220, 200), -1)
    cv2.circle(img, (size // 2, size // 5), size // 8, (30, 20, 40), 2)
    return img


@pytest.fixture()
def folder(tmp_path):
    src = tmp_path / "drawings"
    (src / "alice").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(src / "alice" / f"{i}.jpg" if i else src / "alice" / "0.png"), drawing(i % 2)[..., ::-1])
    out = tmp_path / "cut"
    res = CliRunner().invoke(main, ["matte", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return src, out, tmp_path / "markers"


@pytest.fixture()
def server(folder):
    src, out, markers = folder
    srv = make_server(out, markers, src)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", folder
    srv.shutdown()
    srv.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def post(url, obj):
    req = urllib.request.Request(url, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_list_sorted_by_confidence(server):
    base, (src, out, _) = server
    code, ctype, body = get(base + "/api/items")
    items = json.loads(body)
    assert code == 200 and len(items) == 3
    confs = [i["confidence"] for i in items]
    assert confs == sorted(confs)
    recorded = json.loads((out / "matte.json").read_text())["results"]
    assert sorted(confs) == sorted(r["confidence"] for r in recorded)
    code, ctype, page = get(base + "/")
    assert ctype.startswith("text/html") and b"<canvas" in page and b"http" not in page.split(b"<script>")[1]
    code, ctype, png = get(base + "/input?name=" + items[0]["name"])
    assert ctype == "image/png" and cv2.imdecode(np.frombuffer(png, np.uint8), 1) is not None


def test_rerun_saves_marker_where_handdrawn_reads_and_changes_cutout(server):
    base, (src, out, markers) = server
    name = "alice/1.png"                       # input alice/1.jpg
    before = read_image(out / name)
    scribble = np.zeros((96, 96, 4), np.uint8)
    scribble[40:56, 30:66] = (255, 0, 0, 255)  # "this part of the figure is background"
    png = cv2.imencode(".png", cv2.cvtColor(scribble, cv2.COLOR_RGBA2BGRA))[1].tobytes()
    code, j = post(base + "/api/rerun", {"name": name,
                                         "markers": "data:image/png;base64," + base64.b64encode(png).decode()})
    assert code == 200, j
    mpath = markers / "alice" / "1.png"       # udpgen handdrawn: markers_dir / rel.with_suffix('.png')
    assert mpath.is_file() and np.array_equal(read_image(mpath), scribble)
    after = read_image(out / name)
    assert after.shape == before.shape and not np.array_equal(after[..., 3], before[..., 3])
    assert after[48, 48, 3] < before[48, 48, 3]
    code, j = post(base + "/api/rerun", {"name": name, "markers": "data:image/png;base64,bm90IGEgcG5n"})
    assert code == 400
    small = cv2.imencode(".png", np.zeros((10, 12, 3), np.uint8))[1].tobytes()
    code, j = post(base + "/api/rerun", {"name": name,
                                         "markers": "data:image/png;base64," + base64.b64encode(small).decode()})
    assert code == 400 and "12x10" in j["error"]
    assert np.array_equal(read_image(mpath), scribble)  # the good markers were not replaced


def test_decisions_recorded(server):
    base, (src, out, _) = server
    assert post(base + "/api/decide", {"name": "alice/0.png", "decision": "accept"})[0] == 200
    assert post(base + "/api/decide", {"name": "alice/2.png", "decision": "reject"})[0] == 200
    assert post(base + "/api/decide", {"name": "alice/2.png", "decision": "maybe"})[0] == 400
    assert json.loads((out / "review.json").read_text()) == {"alice/0.png": "accept", "alice/2.png": "reject"}
    items = {i["name"]: i["decision"] for i in json.loads(get(base + "/api/items")[2])}
    assert items["alice/0.png"] == "accept" and items["alice/1.png"] is None


def test_traversal_refused(server):
    base, (src, out, markers) = server
    (out / "secret.png").write_bytes(b"x")
    for name in ["../drawings/alice/0.png", "/etc/passwd", "secret.png", "alice/../alice/0.png", 3]:
        assert post(base + "/api/decide", {"name": name, "decision": "accept"})[0] == 404
        assert post(base + "/api/rerun", {"name": name, "markers": "data:image/png;base64,"})[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        get(base + "/cutout?name=../../etc/passwd")
    assert e.value.code == 404
    assert not (out / "review.json").exists() and not markers.exists()


def test_bad_host_bad_dir_port_in_use(folder, tmp_path):
    src, out, markers = folder
    with pytest.raises(UdpgenError, match="127.0.0.1"):
        make_server(out, markers, host="0.0.0.0")
    with pytest.raises(UdpgenError, match="matte.json"):
        list_items(tmp_path)
    res = CliRunner().invoke(main, ["matte-review", str(tmp_path / "nope"), "--no-open"])
    assert res.exit_code == 1 and "matte.json" in res.output and "Traceback" not in res.output
    srv = make_server(out, markers)
    try:
        res = CliRunner().invoke(main, ["matte-review", str(out), "--no-open",
                                        "--port", str(srv.server_address[1])])
        assert res.exit_code == 1 and "port" in res.output and len(res.output.strip().splitlines()) == 1
    finally:
        srv.server_close()


def test_cli_prints_url_and_stops_on_ctrl_c(folder):
    import os
    import signal
    import subprocess
    import sys

    src, out, markers = folder
    p = subprocess.Popen([sys.executable, "-m", "udpgen.cli", "matte-review", str(out), "--input", str(src),
                          "--markers", str(markers), "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=os.getcwd())
    try:
        line = p.stdout.readline()
        url = next(w for w in line.split() if w.startswith("http"))
        assert url.startswith("http://127.0.0.1:"), line
        assert len(json.loads(get(url + "api/items")[2])) == 3
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0 and "stopped" in rest and "Traceback" not in err


def test_browser_paint_rerun_accept(server):
    """The page in a real headless chromium (Debian's chromium + chromium-driver, Selenium from PyPI);
    skipped when any is missing. Paints a red scribble with pointer events, re-runs, accepts."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_bin = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, (src, out, markers) = server
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        drv.get(base + "/")
        wait = WebDriverWait(drv, 30)
        item = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '.it[data-name="alice/1.png"]'))
        before = read_image(out / "alice" / "1.png")
        item.click()
        wait.until(lambda d: d.execute_script("return document.getElementById('paint').width") == 96)
        drv.find_element(By.CSS_SELECTOR, 'input[value="bg"]').click()
        drv.execute_script("""
            const c = document.getElementById('paint'), r = c.getBoundingClientRect();
            const ev = (t, x, y) => c.dispatchEvent(new PointerEvent(t, {clientX: r.left + x, clientY: r.top + y,
                bubbles: true, pointerId: 1, isPrimary: true}));
            for (let y = 42; y <= 54; y += 4) { ev('pointerdown', 32, y);
                for (let x = 32; x <= 64; x += 2) ev('pointermove', x, y); window.dispatchEvent(new PointerEvent('pointerup')); }
        """)
        drv.find_element(By.ID, "rerun").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.rerun"))
        drv.find_element(By.ID, "accept").click()
        wait.until(lambda d: d.execute_script("return document.body.dataset.decided") == "accept")
    finally:
        drv.quit()
    m = read_image(markers / "alice" / "1.png")
    assert m.shape[:2] == (96, 96)
    red = (m[..., 0] > 200) & (m[..., 1] < 60) & (m[..., 3] > 0)
    assert red[48, 48] and not red[10, 10]
    after = read_image(out / "alice" / "1.png")
    assert after[48, 48, 3] < before[48, 48, 3]
    assert json.loads((out / "review.json").read_text()) == {"alice/1.png": "accept"}


def test_handdrawn_leaves_out_rejected_images_and_keeps_accepted_ones(folder, tmp_path):
    from udpgen.drawn.review import record_decision
    from udpgen.shards import iter_samples, list_shards

    src, out, _ = folder
    items = {i.rel: i for i in list_items(out)}
    assert set(items) == {"alice/0.png", "alice/1.jpg", "alice/2.jpg"}
    assert items["alice/1.jpg"].confidence < 0.5 <= items["alice/2.jpg"].confidence    # the cluttered one is low
    record_decision(out, items["alice/1.jpg"], "accept")
    record_decision(out, items["alice/2.jpg"], "reject")
    shards = tmp_path / "shards"
    args = ["handdrawn", str(src), "--out", str(shards), "--size", "32", "--skip-low", "--min-confidence", "0.5",
            "--review", str(out), "--json", "-q", "--allow-failures"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    # rejected: out although confident; accepted: in although below --min-confidence with --skip-low
    assert [(f["key"], f["reason"]) for f in summary["failures"]] == [("alice/2.jpg", "rejected in review")]
    assert summary["views"] == 2 and not summary["low_confidence"]
    kept = [v.extra["file"] for t in list_shards(shards, "train") + list_shards(shards, "val")
            for s in iter_samples(t) for v in s.views]
    assert kept == ["alice/0.png", "alice/1.jpg"]
    # without the review, --skip-low leaves the low one out
    plain = CliRunner().invoke(main, [a for a in args if a not in ("--review", str(out))] + ["--out", str(tmp_path / "p")])
    assert json.loads(plain.stdout)["views"] == 2 and "alice/1.jpg" in plain.stdout
    # a changed decision changes the plan: the rerun refuses until --overwrite
    record_decision(out, items["alice/2.jpg"], "accept")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "inputs differ" in again.output
    res = CliRunner().invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0 and json.loads(res.stdout)["views"] == 3
