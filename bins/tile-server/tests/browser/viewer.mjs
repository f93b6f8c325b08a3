// Drives tile-server's map viewer in Debian's chromium, headless, for
// bins/tile-server/tests/viewer.rs. Usage:
//   node viewer.mjs BASE_URL SCREENSHOT.png
// 1. Loads the viewer at zoom 14 with a tile corner at the centre of a
//    768x512 window, waits for every tile, and saves a screenshot (controls
//    hidden) for the test to compare with the stored tiles.
// 2. Jumps to zoom 15 and pans quickly across 10 screens (one screen width
//    and half a height every 20 ms), then waits until the last screen's tiles have all
//    loaded.
// Prints one JSON line: the view of step 1 and the timings of step 2, with
// the server's /metrics read right after the last screen loaded.
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 768, height: 512 }, deviceScaleFactor: 1 });
  // The north-west corner of tile 13/x/y, in degrees.
  const corner = (z, x, y) => {
    const n = 2 ** z;
    const lon = x / n * 360 - 180;
    const lat = Math.atan(Math.sinh(Math.PI * (1 - 2 * y / n))) * 180 / Math.PI;
    return { lat, lon };
  };
  const z = 14, x = 9327, y = 4742;
  const c = corner(z, x, y);
  await page.goto(`${base}/#map=demo&z=${z}&lat=${c.lat}&lon=${c.lon}`);
  await page.addStyleTag({ content: '.leaflet-control-container, #status { display: none !important; }' });
  const loaded = () => page.evaluate(() => new Promise(resolve => {
    const layer = Object.values(window.tessera.map._layers).find(l => l._url);
    if (!layer.isLoading()) resolve(); else layer.once('load', resolve);
  }));
  await loaded();
  // Leaflet may still be fading tiles in.
  await page.waitForTimeout(500);
  await page.screenshot({ path: screenshot });

  // Step 2: a fast pan at zoom 15, where nothing is stored yet.
  await page.evaluate(() => window.tessera.map.setZoom(15, { animate: false }));
  await loaded();
  // Every tile request of the pan, and how it ended.
  const requested = new Set(), finished = new Set(), failed = new Set();
  page.on('request', r => { if (r.url().includes('.png?session=')) requested.add(r.url()); });
  page.on('requestfinished', r => finished.add(r.url()));
  page.on('requestfailed', r => failed.add(r.url()));
  const started = Date.now();
  for (let i = 0; i < 10; i++) {
    await page.evaluate(() => window.tessera.map.panBy([768, 256], { animate: false }));
    await page.waitForTimeout(20);
  }
  const lastMove = Date.now();
  await loaded();
  const lastScreenLoaded = Date.now();
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const pending = [...requested].filter(u => !finished.has(u) && !failed.has(u)).length;
  const tiles = await page.evaluate(() =>
    [...document.querySelectorAll('img.leaflet-tile-loaded')].map(i => i.src.replace(location.origin, '')));
  console.log(JSON.stringify({
    view: { z, x, y },
    pan_seconds: (lastMove - started) / 1000,
    last_screen_seconds: (lastScreenLoaded - lastMove) / 1000,
    metrics,
    last_screen_tiles: tiles,
    requested: requested.size,
    finished: [...requested].filter(u => finished.has(u)).length,
    aborted: [...requested].filter(u => failed.has(u)).length,
    pending,
  }));
} finally {
  await browser.close();
}
