// Measures the page under load: sends bursts of writes until at least 200 messages are in
// flight on screen, then samples the frame rate the page reports (requestAnimationFrame
// intervals averaged over 30 frames). Prints one JSON line for docs/visualizer.md.

import { start, setRange, shot } from './harness.mjs';

const { page, url, close } = await start({ limitMs: 120_000 });
const read = async (id) => parseFloat(await page.locator(`[data-testid="${id}"]`).textContent());
try {
  await page.goto(url);
  await page.locator('[data-testid="node-5554"]').waitFor({ timeout: 30_000 });
  // Slow enough that a burst's messages stay in the air for a while.
  await setRange(page, 'speed', 30);
  const samples = [];
  for (let round = 0; round < 8; round++) {
    // Four bursts at once: 100 writes, each about fifteen messages over four round trips.
    for (let burst = 0; burst < 4; burst++) await page.locator('[data-testid="burst"]').click();
    for (let tick = 0; tick < 5; tick++) {
      await page.waitForTimeout(200);
      samples.push({ inFlight: await read('in-flight'), fps: await read('fps') });
    }
  }
  await shot(page, 'measure-load');
  const loaded = samples.filter((sample) => sample.inFlight >= 200);
  const average = (list) => list.reduce((sum, value) => sum + value, 0) / Math.max(1, list.length);
  const result = {
    samples: samples.length,
    samplesWith200InFlight: loaded.length,
    maxInFlight: Math.max(...samples.map((sample) => sample.inFlight)),
    fpsWith200InFlight: Math.round(average(loaded.map((sample) => sample.fps))),
    minFpsWith200InFlight: Math.min(...loaded.map((sample) => sample.fps)),
  };
  console.log(JSON.stringify(result));
} finally {
  await close();
}
