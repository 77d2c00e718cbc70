// Measures the page under load: sends bursts of writes until at least 250 messages are in
// flight on screen, then measures one-second windows while the load lasts. For each window it
// records:
//
// - the frame rate: requestAnimationFrame timestamps counted in the page (`rafFps`), the
//   longest frame interval and how many intervals exceeded 25 ms (a missed 60 Hz frame), and
//   the page's own readout (`data-testid="fps"`, averaged over 30 frames);
// - what a frame costs the page: its own per-frame work (advancing the simulation, painting
//   the canvases, Yew's re-rendering when due), measured with performance.now() inside the
//   page and read from `data-testid="frame-cost"` (p50, p95 and the largest over the last 60
//   frames);
// - the renderer's main-thread busy time per frame (Chrome's Performance.getMetrics
//   TaskDuration over the window, divided by its frames), which includes style, layout and
//   paint, so it still means something when the machine is loaded and frames are missed for
//   lack of a core;
// - the machine's load average before and after.
//
// Windows count as loaded when at least 200 messages were in flight throughout. Usage:
//   node e2e/measure.mjs [--runs N] [--reduced-motion]     (after scripts/web.sh build)
// Prints one JSON line per run and, with several runs, a summary line with the ranges.

import os from 'node:os';
import { start, setRange, shot } from './harness.mjs';

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Math.max(1, parseInt(process.argv[runsArg + 1], 10) || 1) : 1;
// With --reduced-motion the page draws routes instead of travelling dots.
const reducedMotion = process.argv.includes('--reduced-motion');
const WINDOW_MS = 1_000;
const ROUNDS = 6;
const LOADED = 200;
const BURST_MS = 300;

const { page, url, close } = await start({ limitMs: 60_000 + 90_000 * runs });
const cdp = await page.context().newCDPSession(page);
await cdp.send('Performance.enable');

async function taskSeconds() {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((metric) => metric.name === 'TaskDuration')?.value ?? NaN;
}

/** One window: rAF timestamps, in-flight counts seen each frame, and the page's cost readout. */
async function measureWindow() {
  const before = await taskSeconds();
  const window = await page.evaluate((windowMs) => new Promise((resolve) => {
    const stamps = [];
    const inFlight = [];
    const began = performance.now();
    const read = (id) => document.querySelector(`[data-testid="${id}"]`);
    const frame = (stamp) => {
      stamps.push(stamp);
      inFlight.push(parseFloat(read('in-flight')?.textContent ?? 'NaN'));
      if (stamp - began < windowMs) {
        requestAnimationFrame(frame);
        return;
      }
      const cost = read('frame-cost');
      resolve({
        stamps,
        inFlight,
        fpsReadout: parseFloat(read('fps')?.textContent ?? 'NaN'),
        workP50: cost ? parseFloat(cost.dataset.p50) : null,
        workP95: cost ? parseFloat(cost.dataset.p95) : null,
        workMax: cost ? parseFloat(cost.dataset.max) : null,
      });
    };
    requestAnimationFrame(frame);
  }), WINDOW_MS);
  const after = await taskSeconds();
  const intervals = window.stamps.slice(1).map((stamp, index) => stamp - window.stamps[index]);
  const span = window.stamps.at(-1) - window.stamps[0];
  return {
    minInFlight: Math.min(...window.inFlight),
    maxInFlight: Math.max(...window.inFlight),
    rafFps: (intervals.length * 1_000) / span,
    longestFrameMs: Math.max(...intervals),
    framesOver25ms: intervals.filter((interval) => interval > 25).length,
    frames: intervals.length,
    fpsReadout: window.fpsReadout,
    workP50: window.workP50,
    workP95: window.workP95,
    workMax: window.workMax,
    mainThreadMsPerFrame: ((after - before) * 1_000) / Math.max(1, intervals.length),
  };
}

const round1 = (value) => (value === null || Number.isNaN(value) ? null : Math.round(value * 10) / 10);
const range = (values) => {
  const known = values.filter((value) => value !== null && !Number.isNaN(value));
  return known.length ? [round1(Math.min(...known)), round1(Math.max(...known))] : null;
};
const median = (values) => {
  const known = values.filter((value) => value !== null && !Number.isNaN(value)).sort((a, b) => a - b);
  return known.length ? round1(known[Math.floor((known.length - 1) / 2)]) : null;
};

const results = [];
try {
  for (let run = 0; run < runs; run++) {
    const load = os.loadavg()[0];
    if (reducedMotion) await page.emulateMedia({ reducedMotion: 'reduce' });
    await page.goto(url);
    await page.locator('[data-testid="node-5554"]').waitFor({ timeout: 30_000 });
    // Latency up to 20 ms and a slow speed, so that a burst's messages stay in the air for a
    // while: at the default 5 ms the bursts become disk-bound (messages wait for the
    // persistence barrier rather than fly) and the count on screen sinks below 100.
    await setRange(page, 'latency', 20);
    await setRange(page, 'speed', 30);
    // Before each window, a burst of 25 writes every BURST_MS until 250 messages are on
    // screen, clicked by the page itself (a click from here waits for the button to hold still,
    // most of a second while the page is busy); no clicks during a window, so it measures the
    // page drawing what is in flight, as a person watching it sees it.
    const windows = [];
    for (let round = 0; round < ROUNDS; round++) {
      await page.evaluate(({ target, everyMs, limitMs }) => new Promise((resolve) => {
        const started = performance.now();
        const shown = () => parseFloat(document.querySelector('[data-testid="in-flight"]')?.textContent ?? '') || 0;
        const tick = () => {
          if (shown() >= target || performance.now() - started > limitMs) return resolve();
          document.querySelector('[data-testid="burst"]').click();
          setTimeout(tick, everyMs);
        };
        tick();
      }), { target: LOADED + 50, everyMs: BURST_MS, limitMs: 20_000 });
      windows.push(await measureWindow());
      if (process.env.MEASURE_DEBUG) console.log(JSON.stringify(windows.at(-1)));
    }
    if (run === 0) await shot(page, 'measure-load');
    const loaded = windows.filter((window) => window.minInFlight >= LOADED);
    const result = {
      run: run + 1,
      reducedMotion,
      windows: windows.length,
      loadedWindows: loaded.length,
      inFlight: range(loaded.flatMap((window) => [window.minInFlight, window.maxInFlight])),
      rafFps: range(loaded.map((window) => window.rafFps)),
      rafFpsMedian: median(loaded.map((window) => window.rafFps)),
      fpsReadout: range(loaded.map((window) => window.fpsReadout)),
      framesOver25ms: loaded.reduce((sum, window) => sum + window.framesOver25ms, 0),
      frames: loaded.reduce((sum, window) => sum + window.frames, 0),
      longestFrameMs: range(loaded.map((window) => window.longestFrameMs))?.[1] ?? null,
      pageWorkP50Ms: range(loaded.map((window) => window.workP50)),
      pageWorkP95Ms: range(loaded.map((window) => window.workP95)),
      pageWorkMaxMs: range(loaded.map((window) => window.workMax))?.[1] ?? null,
      mainThreadMsPerFrame: range(loaded.map((window) => window.mainThreadMsPerFrame)),
      loadAverage: [round1(load), round1(os.loadavg()[0])],
      cores: os.cpus().length,
    };
    results.push(result);
    console.log(JSON.stringify(result));
  }
  if (runs > 1) {
    const all = (field) => results.flatMap((result) => result[field] ?? []);
    console.log(JSON.stringify({
      summary: `${runs} runs`,
      loadedWindows: results.reduce((sum, result) => sum + result.loadedWindows, 0),
      rafFps: range(all('rafFps')),
      fpsReadout: range(all('fpsReadout')),
      pageWorkP50Ms: range(all('pageWorkP50Ms')),
      pageWorkP95Ms: range(all('pageWorkP95Ms')),
      pageWorkMaxMs: range(all('pageWorkMaxMs'))?.[1] ?? null,
      mainThreadMsPerFrame: range(all('mainThreadMsPerFrame')),
      framesOver25ms: `${results.reduce((sum, result) => sum + result.framesOver25ms, 0)} of ${results.reduce((sum, result) => sum + result.frames, 0)}`,
      loadAverage: range(all('loadAverage')),
    }));
  }
} finally {
  await close();
}
