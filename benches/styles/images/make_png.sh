#!/usr/bin/env bash
# Remakes the PNG images of images_helsinki.xml from the SVGs in src/ (CC0,
# openstreetmap-carto 5.7.0; see LICENCE.md). The PNGs are committed, so the
# benchmark does not need this; run it only after changing a source.
# Needs rsvg-convert (Debian: librsvg2-bin; made with 2.54.7).
#   POI icons: the black osm-carto icon, filled with a colour set on the root
#   <svg> (fill is inherited), at its own size (14 px).
#   Pattern and line-pattern tiles: as they are, at their own size.
set -euo pipefail
cd "$(dirname "$0")"
command -v rsvg-convert >/dev/null || { echo "needs rsvg-convert: apt-get install -y librsvg2-bin" >&2; exit 1; }
icon() { # name colour
  sed "s/<svg /<svg fill=\"$2\" /" "src/$1.svg" | rsvg-convert -f png -o "$1.png"
}
icon pub '#734a08'
icon fast_food '#734a08'
icon bank '#734a08'
icon museum '#734a08'
icon hotel '#0092da'
icon toilets '#0092da'
icon department_store '#ac39ac'
for tile in allotments dog_park embankment; do
  rsvg-convert -f png -o "$tile.png" "src/$tile.svg"
done
