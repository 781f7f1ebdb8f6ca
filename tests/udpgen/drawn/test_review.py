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


@pytest.fixture()
def failed_server(tmp_path):
    """A matte folder where two of three images failed (no character; not an image), served."""
    src = tmp_path / "drawings"
    src.mkdir()
    cv2.imwrite(str(src / "good.png"), drawing(0)[..., ::-1])
    cv2.imwrite(str(src / "blank.png"), np.full((96, 96, 3), 255, np.uint8))
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out, markers = tmp_path / "cut", tmp_path / "markers"
    res = CliRunner().invoke(main, ["matte", str(src), "--out", str(out)])
    assert res.exit_code == 1 and "2 of 3" in res.output, res.output
    srv = make_server(out, markers, src)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", (src, out, markers)
    srv.shutdown()
    srv.server_close()


def scribbles(fg, bg, size=96) -> str:
    """A marker PNG data URL: green over the (y0, y1, x0, x1) box ``fg``, red over ``bg``."""
    m = np.zeros((size, size, 4), np.uint8)
    for (y0, y1, x0, x1), c in ((fg, (0, 255, 0, 255)), (bg, (255, 0, 0, 255))):
        m[y0:y1, x0:x1] = c
    png = cv2.imencode(".png", cv2.cvtColor(m, cv2.COLOR_RGBA2BGRA))[1].tobytes()
    return "data:image/png;base64," + base64.b64encode(png).decode()


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


def test_failed_images_listed_first_with_their_message_and_rescued_by_scribbles(failed_server):
    base, (src, out, markers) = failed_server
    items = json.loads(get(base + "/api/items")[2])
    assert [i["name"] for i in items][2:] == ["good.png"] and items[2]["error"] is None
    failed = {i["name"]: i for i in items[:2]}
    assert set(failed) == {"blank.png", "broken.png"} and all(i["confidence"] is None for i in failed.values())
    assert "no character found" in failed["blank.png"]["error"] and "broken.jpg" in failed["broken.png"]["error"]
    assert get(base + "/input?name=blank.png")[1] == "image/png"   # shown, to scribble on
    with pytest.raises(urllib.error.HTTPError) as e:
        get(base + "/input?name=broken.png")                       # unreadable: a 404 with the reason
    assert e.value.code == 404 and "broken.jpg" in json.loads(e.value.read())["error"]
    # the unreadable one stays failed (a re-run with no scribbles: the saved ones, here none)
    code, j = post(base + "/api/rerun", {"name": "broken.png", "markers": None})
    assert code == 400 and "broken.jpg" in j["error"] and not (out / "broken.png").exists()
    # green on the figure a user sees, red along the top: a cut-out, and matte.json no longer lists it failed
    code, j = post(base + "/api/rerun", {"name": "blank.png", "markers": scribbles((40, 56, 40, 56), (0, 4, 0, 96))})
    assert code == 200, j
    cut = read_image(out / "blank.png")
    assert cut[48, 48, 3] == 255 and cut[1, 48, 3] == 0
    row = next(r for r in json.loads((out / "matte.json").read_text())["results"] if r["rel"] == "blank.png")
    assert row["output"] == "blank.png" and row["error"] is None and row["confidence"] == j["confidence"]
    assert (markers / "blank.png").is_file()
    items = {i["name"]: i for i in json.loads(get(base + "/api/items")[2])}
    assert items["blank.png"]["error"] is None and items["broken.png"]["error"]
    assert {i.rel for i in list_items(out) if i.error} == {"broken.jpg"}


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


@pytest.fixture()
def browser():
    """A headless chromium (Debian's chromium + chromium-driver, Selenium from PyPI) -> (driver, By, wait);
    skipped when any is missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_bin = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        yield drv, By, WebDriverWait(drv, 30)
    finally:
        drv.quit()


# Strokes with pointer events over the paint canvas, one per y in ys, from x0 to x1 (canvas pixels).
_PAINT = """
    const [x0, x1, ys] = arguments, c = document.getElementById('paint'), r = c.getBoundingClientRect();
    const ev = (t, x, y) => c.dispatchEvent(new PointerEvent(t, {clientX: r.left + x, clientY: r.top + y,
        bubbles: true, pointerId: 1, isPrimary: true}));
    for (const y of ys) { ev('pointerdown', x0, y);
        for (let x = x0; x <= x1; x += 2) ev('pointermove', x, y); window.dispatchEvent(new PointerEvent('pointerup')); }
"""


def paint(drv, By, pen, x0, x1, ys):
    drv.find_element(By.CSS_SELECTOR, f'input[value="{pen}"]').click()
    drv.execute_script(_PAINT, x0, x1, list(ys))


def test_browser_paint_rerun_accept(server, browser):
    """The page in a real headless chromium: paints a red scribble with pointer events, re-runs, accepts."""
    drv, By, wait = browser
    base, (src, out, markers) = server
    drv.get(base + "/")
    item = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '.it[data-name="alice/1.png"]'))
    before = read_image(out / "alice" / "1.png")
    item.click()
    wait.until(lambda d: d.execute_script("return document.getElementById('paint').width") == 96)
    paint(drv, By, "bg", 32, 64, range(42, 55, 4))
    drv.find_element(By.ID, "rerun").click()
    wait.until(lambda d: d.execute_script("return document.body.dataset.rerun"))
    drv.find_element(By.ID, "accept").click()
    wait.until(lambda d: d.execute_script("return document.body.dataset.decided") == "accept")
    m = read_image(markers / "alice" / "1.png")
    assert m.shape[:2] == (96, 96)
    red = (m[..., 0] > 200) & (m[..., 1] < 60) & (m[..., 3] > 0)
    assert red[48, 48] and not red[10, 10]
    after = read_image(out / "alice" / "1.png")
    assert after[48, 48, 3] < before[48, 48, 3]
    assert json.loads((out / "review.json").read_text()) == {"alice/1.png": "accept"}


def test_browser_lists_failed_images_and_a_scribble_rescues_one(failed_server, browser):
    """Failed images in the page: first, marked, with their message; the unreadable one has no input to
    paint on; scribbles on the blank one and a re-run turn it into a cut-out."""
    drv, By, wait = browser
    base, (src, out, markers) = failed_server
    drv.get(base + "/")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".it")) == 3)
    rows = drv.find_elements(By.CSS_SELECTOR, ".it")
    assert [r.get_attribute("data-failed") for r in rows] == ["1", "1", None]
    blank = drv.find_element(By.CSS_SELECTOR, '.it[data-name="blank.png"]')
    assert "no character found" in blank.text
    drv.find_element(By.CSS_SELECTOR, '.it[data-name="broken.png"]').click()
    wait.until(lambda d: "broken.jpg" in d.find_element(By.ID, "msg").text)
    drv.find_element(By.CSS_SELECTOR, '.it[data-name="blank.png"]').click()  # the list was redrawn
    wait.until(lambda d: d.execute_script("return document.getElementById('paint').width") == 96)
    paint(drv, By, "fg", 40, 56, range(40, 57, 4))
    paint(drv, By, "bg", 0, 94, [2])
    drv.find_element(By.ID, "rerun").click()
    wait.until(lambda d: d.execute_script("return document.body.dataset.rerun"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '.it[data-name="blank.png"]').get_attribute("data-failed")
               is None)
    cut = read_image(out / "blank.png")
    assert cut[48, 48, 3] == 255 and cut[2, 48, 3] == 0
    m = read_image(markers / "blank.png")
    assert m[48, 48, 1] > 200 and m[48, 48, 0] < 60   # green where it was painted


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


def test_matting_one_image_again_keeps_the_others_listed_and_its_place(folder):
    """A second `udpgen matte` into the same folder (one image again) replaces that image's row in matte.json
    and keeps the rows of the images it did not touch, so matte-review still lists them all; an image given
    alone goes back to the sub-folder its folder run recorded."""
    src, out, _ = folder
    before = {r["target"]: r for r in json.loads((out / "matte.json").read_text())["results"]}
    one = src / "alice"
    res = CliRunner().invoke(main, ["matte", str(one / "1.jpg"), "--out", str(out / "alice")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["matte", str(one), "--out", str(out / "alice")])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "alice" / "matte.json").read_text())["results"]
    assert sorted(r["target"] for r in rows) == ["0.png", "1.png", "2.png"]       # not four: 1.png replaced
    # given alone, an image the folder run recorded goes back where that run put it (its sub-folder)
    (out / "alice" / "2.png").unlink()
    res = CliRunner().invoke(main, ["matte", str(one / "2.jpg"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    after = json.loads((out / "matte.json").read_text())["results"]
    assert sorted(r["target"] for r in after) == sorted(before)
    assert (out / "alice" / "2.png").is_file() and not (out / "2.png").exists()
    assert next(r for r in after if r["target"] == "alice/2.png")["rel"] == "alice/2.jpg"    # markers/alice/2.png
    assert len(list_items(out, src)) == 3
    # a target that leaves --out (an edited matte.json) is not followed
    meta = out / "matte.json"
    rows = json.loads(meta.read_text())["results"]
    for r in rows:
        r["target"] = "../escaped.png"
    meta.write_text(json.dumps({"results": rows}))
    res = CliRunner().invoke(main, ["matte", str(one / "2.jpg"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "2.png").is_file() and not (out.parent / "escaped.png").exists()
