"""A tiny PMD writer for tests: ``build(spec(...))`` gives the bytes of a PMD file (udpgen writes no PMD)."""
from __future__ import annotations

import struct

NONE = 0xFFFF


def _s(text: str, n: int) -> bytes:
    """A fixed cp932 field as real files store it: NUL-terminated, padded with 0xFD."""
    return (text.encode("cp932") + b"\0").ljust(n, b"\xfd")[:n]


def spec(**over) -> dict:
    """A small valid model: 4 vertices, 2 triangles, 1 material, 3 bones, no morphs, no extensions."""
    d = dict(
        name="テスト", comment="コメント",
        vertices=[((0, 0, 0), 0, 1, 100, 0), ((1, 0, 0), 0, 1, 0, 1), ((0, 1, 0), 1, 1, 50, 0),
                  ((1, 1, 0), 0, 1, 30, 0)],
        faces=[(0, 1, 2), (1, 3, 2)],
        materials=[dict(alpha=1.0, toon=255, edge=1, count=6, tex="")],
        bones=[("センター", NONE, 1, 1, 0, (0, 1, 0)), ("上半身", 0, 2, 0, 0, (0, 2, 0)),
               ("上半身先", 1, 0, 7, 0, (0, 3, 0))],
        iks=[], morphs=[], morph_display=[], frames=["センター\n"], bone_display=[(0, 1)],
        english=None, toons=None, rigids=None, joints=[], tail=b"")
    d.update(over)
    return d


def build(d: dict) -> bytes:
    out = [b"Pmd", struct.pack("<f", 1.0), _s(d["name"], 20), _s(d["comment"], 256)]
    out.append(struct.pack("<I", len(d["vertices"])))
    for pos, b0, b1, w, no_edge in d["vertices"]:
        out.append(struct.pack("<8f2H2B", *pos, 0, 0, -1, 0.5, 0.5, b0, b1, w, no_edge))
    idx = [i for f in d["faces"] for i in f]
    out.append(struct.pack(f"<I{len(idx)}H", len(idx), *idx))
    out.append(struct.pack("<I", len(d["materials"])))
    for m in d["materials"]:
        out.append(struct.pack("<4ff3f3fBBI", 0.8, 0.8, 0.8, m["alpha"], 5.0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2,
                               m["toon"], m["edge"], m["count"]) + _s(m["tex"], 20))
    out.append(struct.pack("<H", len(d["bones"])))
    for name, parent, tail, kind, ikf, pos in d["bones"]:
        out.append(_s(name, 20) + struct.pack("<HHBH3f", parent, tail, kind, ikf, *pos))
    out.append(struct.pack("<H", len(d["iks"])))
    for bone, target, iters, weight, chain in d["iks"]:
        out.append(struct.pack(f"<HHBHf{len(chain)}H", bone, target, len(chain), iters, weight, *chain))
    out.append(struct.pack("<H", len(d["morphs"])))
    for name, kind, items in d["morphs"]:
        out.append(_s(name, 20) + struct.pack("<IB", len(items), kind))
        out += [struct.pack("<I3f", i, *o) for i, o in items]
    out.append(struct.pack(f"<B{len(d['morph_display'])}H", len(d["morph_display"]), *d["morph_display"]))
    out.append(struct.pack("<B", len(d["frames"])) + b"".join(_s(f, 50) for f in d["frames"]))
    out.append(struct.pack("<I", len(d["bone_display"])) + b"".join(struct.pack("<HB", *e) for e in d["bone_display"]))
    e = d["english"]
    if e is not None:
        out.append(struct.pack("<B", bool(e)))
        if e:
            out += [_s(e["name"], 20), _s(e["comment"], 256)] + [_s(n, 20) for n in e["bones"]]
            out += [_s(n, 20) for n in e["morphs"]] + [_s(n, 50) for n in e["frames"]]
    if d["toons"] is not None:
        out += [_s(t, 100) for t in d["toons"]]
    if d["rigids"] is not None:
        out.append(struct.pack("<I", len(d["rigids"])))
        for name, bone, pos in d["rigids"]:
            out.append(_s(name, 20) + struct.pack("<HBHB3f3f3f5fB", bone, 1, 0xFFFE, 1, 1, 2, 3, *pos,
                                                  0, 0.5, 0, 1.0, 0.5, 0.5, 0, 0.5, 1))
        out.append(struct.pack("<I", len(d["joints"])))
        for name, a, b in d["joints"]:
            out.append(_s(name, 20) + struct.pack("<II24f", a, b, *range(24)))
    out.append(d["tail"])
    return b"".join(out)


def full_spec() -> dict:
    """Every feature: knee IK, append/twist bones, morphs, English names, custom toons, physics."""
    return spec(
        vertices=[((i, 0, 0), 0, 1, 50, 0) for i in range(8)], faces=[(0, 1, 2), (3, 4, 5)],
        materials=[dict(alpha=1.0, toon=2, edge=1, count=3, tex="a.bmp*b.sph"),
                   dict(alpha=0.98, toon=4, edge=0, count=3, tex="c.spa")],
        bones=[("センター", NONE, 0, 1, 0, (0, 8, 0)), ("左足", 0, 2, 4, 4, (1, 6, 0)),
               ("左ひざ", 1, 3, 4, 4, (1, 3, 0)), ("左足首", 2, 0, 6, 0, (1, 1, 0)),
               ("左足ＩＫ", 0, 0, 2, 0, (1, 1, 0)), ("両目", 0, 0, 0, 0, (0, 9, 0)),
               ("左目", 5, 0, 5, 5, (1, 9, 0)), ("右目", 5, 5, 9, 0x10000 - 100, (-1, 9, 0)),
               ("腕捩", 0, 9, 8, 0, (1, 7, 0)), ("腕捩先", 8, 0, 7, 0, (4, 3, 0))],
        iks=[(4, 3, 40, 0.5, [2, 1]), (4, 9, 3, 0.25, [8])],
        morphs=[("base", 0, [(5, (5, 0, 0)), (2, (2, 0, 0)), (7, (7, 0, 0))]),
                ("あ", 3, [(2, (0, 1, 0)), (0, (0, 2, 0))]), ("まばたき", 2, [(1, (0, 0, 3))])],
        morph_display=[2, 1], frames=["体\n", "足\n"], bone_display=[(0, 1), (1, 2), (2, 2)],
        english=dict(name="Test", comment="comment", bones=[f"bone{i}" for i in range(10)],
                     morphs=["a", "blink"], frames=["Body\n", "Legs"]),
        toons=["toon01.bmp", "toon02.bmp", "toon03.bmp", "toon04.bmp", "mytoon.bmp"] + [""] * 5,
        rigids=[("頭", 5, (0, 1, 0)), ("free", NONE, (0, 0, 1))], joints=[("j", 0, 1)])
