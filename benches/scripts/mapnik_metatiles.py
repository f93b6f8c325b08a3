#!/usr/bin/python3
"""Mapnik's 32-bit reference tiles rendered by metatile, as renderd renders them.

Label placement depends on the metatile (one placement engine per rendered
image), so per-tile Mapnik renders are not comparable with tessera's
metatiles. For each metatile of the list (`x y z` lines, the top-left tile,
as `render_bench --print-metatiles` prints them), this does what mod_tile's
renderd does (gen_tile.cpp): an image of min(N, 2^z) x min(N, 2^z) tiles,
the metatile's corners through generate_tiles.py's GoogleProjection and
`ProjTransform` (mapnik_baseline.py's helpers, which it imports) — or, with
`--extent renderd`, in Web Mercator metres exactly as renderd 0.6.1 computes
them (gen_tile.cpp's tile2prjbounds) — the style's
own `buffer-size` (128 if it has none), one `mapnik.render`, then 256 px
views cut out and written as 32-bit PNG (`png32`) to OUT/z/x/y.png — only
the tiles generate_tiles.py's loops want (`--zoom`, `--bbox`), so that the
comparison is over the same tiles as the throughput runs.

`--no-labels` renders the style with its <TextSymbolizer>s removed: the
scale for the PSNRs (how far a render without any label is from Mapnik's).
The two extents differ only by floating-point rounding (1e-7 px), but
Mapnik truncates a pattern's global phase (pattern_alignment.cpp: fmod of
the map origin's pixel position, then a cast to unsigned), and the origin
lies exactly on a pixel edge, so the rounding moves patterns by a pixel.

`--no-images` likewise removes the image symbolizers (<MarkersSymbolizer>,
<PointSymbolizer>, <LinePatternSymbolizer>, <PolygonPatternSymbolizer>;
written as empty elements, `<... />`), the scale of images_vs_mapnik.sh.

Before rendering it registers the DejaVu fonts (fonts-dejavu-core) and
refuses to run if Mapnik does not know every `face-name` of the style.
`--non-strict` instead loads the style as renderd and generate_tiles.py do
(`load_map(..., strict=False)`, the fonts Mapnik registers itself from the
system's font folders): for openstreetmap-carto, whose fontsets name faces
Debian does not ship (Noto Emoji) and a `font-directory` that does not exist.

Usage (Debian's /usr/bin/python3, which sees python3-mapnik):
  mapnik_metatiles.py --style S.xml --metatiles LIST --zoom 2-6 [--bbox ...] \
      --out DIR [--workers 2] [--metatile 8] [--no-labels | --no-images] \
      [--extent generate_tiles|renderd] [--non-strict]
Prints: metatiles, tiles written, seconds.
"""
import argparse
import multiprocessing
import os
import re
import sys
import time

import mapnik

SHARED = os.environ.get("SHARED") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "bench", "mapnik"))
from mapnik_baseline import GoogleProjection, WORLD_BBOX, enumerate_tiles  # noqa: E402

FONT_DIR = "/usr/share/fonts/truetype/dejavu"

_state = {}

# renderd 0.6.1's Web Mercator bounds (gen_tile.cpp, get_projection)
RENDERD_BOUND = 20037508.3428

# What --no-labels and --no-images remove from the style's XML.
TEXT = re.compile(r"<TextSymbolizer\b.*?</TextSymbolizer>", re.S)
IMAGES = re.compile(r"<(Markers|Point|LinePattern|PolygonPattern)Symbolizer\b[^>]*/>", re.S)


def check_fonts(style):
    mapnik.FontEngine.register_fonts(FONT_DIR, True)
    known = set(mapnik.FontEngine.face_names())
    wanted = set(re.findall(r'face-name="([^"]+)"', open(style, encoding="utf-8").read()))
    missing = sorted(wanted - known)
    if missing:
        sys.exit("Mapnik does not know the faces %s (fonts in %s?)" % (missing, FONT_DIR))


def _init(style, out, n, wanted, drop, extent, strict):
    if strict:
        check_fonts(style)
    m = mapnik.Map(256, 256)
    if drop is not None:
        xml = drop.sub("", open(style, encoding="utf-8").read())
        mapnik.load_map_from_string(m, xml, strict, os.path.dirname(style) + "/")
    else:
        mapnik.load_map(m, style, strict)
    _state.update(m=m, out=out, n=n, wanted=wanted, prj=GoogleProjection(), extent=extent,
                  tr=mapnik.ProjTransform(mapnik.Projection("epsg:4326"), mapnik.Projection(m.srs)))


def render_metatile(meta):
    x0, y0, z = meta
    s = _state
    m, n, prj, tr = s["m"], s["n"], s["prj"], s["tr"]
    size = min(n, 1 << z)
    m.resize(size * 256, size * 256)
    if s["extent"] == "renderd":
        # tile2prjbounds, operation for operation (the same doubles)
        b0, b1, tiles = -RENDERD_BOUND, RENDERD_BOUND, float(1 << z)
        m.zoom_to_box(mapnik.Box2d(b0 + (b1 - b0) * (x0 / tiles), b1 - (b1 - b0) * ((y0 + size) / tiles),
                                   b0 + (b1 - b0) * ((x0 + size) / tiles), b1 - (b1 - b0) * (y0 / tiles)))
    else:
        l0 = prj.fromPixelToLL((x0 * 256, (y0 + size) * 256), z)  # bottom-left
        l1 = prj.fromPixelToLL(((x0 + size) * 256, y0 * 256), z)  # top-right
        c0 = tr.forward(mapnik.Coord(l0[0], l0[1]))
        c1 = tr.forward(mapnik.Coord(l1[0], l1[1]))
        m.zoom_to_box(mapnik.Box2d(c0.x, c0.y, c1.x, c1.y))
    if m.buffer_size == 0:  # renderd: 128 when the style sets none
        m.buffer_size = 128
    im = mapnik.Image(size * 256, size * 256)
    mapnik.render(m, im)
    written = 0
    for dx in range(size):
        for dy in range(size):
            x, y = x0 + dx, y0 + dy
            if (z, x, y) not in s["wanted"]:
                continue
            d = os.path.join(s["out"], str(z), str(x))
            os.makedirs(d, exist_ok=True)
            im.view(dx * 256, dy * 256, 256, 256).save(os.path.join(d, "%d.png" % y), "png32")
            written += 1
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--style", required=True)
    ap.add_argument("--metatiles", required=True, help="file of 'x y z' lines (render_bench --print-metatiles)")
    ap.add_argument("--zoom", required=True, help="MIN-MAX: the wanted tiles, with --bbox")
    ap.add_argument("--bbox", help="minlon,minlat,maxlon,maxlat (default: the world, as generate_tiles.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--metatile", type=int, default=8)
    ap.add_argument("--no-labels", action="store_true", help="without the style's TextSymbolizers")
    ap.add_argument("--no-images", action="store_true", help="without the style's image symbolizers")
    ap.add_argument("--extent", choices=("generate_tiles", "renderd"), default="generate_tiles",
                    help="how the metatile's extent is computed (default: generate_tiles.py's way)")
    ap.add_argument("--non-strict", action="store_true",
                    help="load as renderd does (strict=False), without the DejaVu face check")
    a = ap.parse_args()
    drop = TEXT if a.no_labels else IMAGES if a.no_images else None
    style = os.path.abspath(a.style)
    if not a.non_strict:
        check_fonts(style)
    zmin, zmax = (int(v) for v in a.zoom.split("-"))
    bbox = tuple(float(v) for v in a.bbox.split(",")) if a.bbox else WORLD_BBOX
    wanted = set(enumerate_tiles(bbox, zmin, zmax, GoogleProjection()))
    metas = [tuple(int(v) for v in line.split()) for line in open(a.metatiles) if line.strip()]
    t0 = time.perf_counter()
    with multiprocessing.Pool(a.workers, _init, (style, a.out, a.metatile, wanted, drop, a.extent,
                                                not a.non_strict)) as pool:
        written = sum(pool.map(render_metatile, metas, chunksize=1))
    print("mapnik metatiles: %d metatiles, %d tiles written (%d wanted) in %.1f s" % (
        len(metas), written, len(wanted), time.perf_counter() - t0))
    if written != len(wanted):
        sys.exit("the metatiles do not cover the wanted tiles")


if __name__ == "__main__":
    main()
