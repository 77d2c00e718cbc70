// Where a loaded frame's main-thread time goes: loads the page like measure.mjs, records a
// Chrome trace (devtools.timeline) for two seconds with 200+ messages in flight, and prints the
// renderer main thread's time per frame by event name (self time of the top-level slices).
//   node e2e/profile.mjs    (after scripts/web.sh build)

import { start, setRange } from './harness.mjs';

const { page, url, close } = await start({ limitMs: 120_000 });
const cdp = await page.context().newCDPSession(page);
const inFlight = async () => parseFloat(await page.locator('[data-testid="in-flight"]').textContent()) || 0;
try {
  await page.goto(url);
  await page.locator('[data-testid="node-5554"]').waitFor({ timeout: 30_000 });
  if (process.env.PROFILE_CSS) await page.addStyleTag({ content: process.env.PROFILE_CSS });
  await setRange(page, 'speed', 30);
  for (let tries = 0; tries < 10 && (await inFlight()) < 250; tries++) {
    await page.locator('[data-testid="burst"]').click();
    await page.waitForTimeout(150);
  }
  if (process.env.PROFILE_CPU) {
    // A sampling CPU profile of the page's script instead: self time by function.
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
    await page.waitForTimeout(3_000);
    const { profile } = await cdp.send('Profiler.stop');
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const self = new Map();
    const deltas = profile.timeDeltas;
    profile.samples.forEach((id, index) => {
      const name = byId.get(id).callFrame.functionName || `(${byId.get(id).callFrame.url.split('/').at(-1) || 'program'})`;
      self.set(name, (self.get(name) ?? 0) + (deltas[index + 1] ?? 0));
    });
    const total = [...self.values()].reduce((sum, value) => sum + value, 0);
    for (const [name, micros] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
      console.log(`${(100 * micros / total).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(5)} ms  ${name.slice(0, 110)}`);
    }
    process.exit(0);
  }
  const events = [];
  cdp.on('Tracing.dataCollected', ({ value }) => events.push(...value));
  const done = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', {
    categories: process.env.PROFILE_CATEGORIES ?? 'devtools.timeline,disabled-by-default-devtools.timeline,blink,cc,v8.execute',
    transferMode: 'ReportEvents',
  });
  const before = await inFlight();
  await page.waitForTimeout(2_000);
  const after = await inFlight();
  await cdp.send('Tracing.end');
  await done;
  // The renderer main thread: the thread that ran the frames' animation callbacks.
  const raf = events.find((event) => event.name === 'FireAnimationFrame');
  const main = events.filter((event) => event.pid === raf?.pid && event.tid === raf?.tid && event.ph === 'X');
  const frames = events.filter((event) => event.pid === raf?.pid && event.tid === raf?.tid && event.name === 'FireAnimationFrame').length;
  // Self time per name: a slice's duration minus its children's on the same thread.
  main.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const self = new Map();
  const stack = [];
  for (const event of main) {
    while (stack.length && stack.at(-1).ts + stack.at(-1).dur <= event.ts) stack.pop();
    const parent = stack.at(-1);
    if (parent) self.set(parent.name, (self.get(parent.name) ?? 0) - event.dur);
    self.set(event.name, (self.get(event.name) ?? 0) + event.dur);
    stack.push(event);
  }
  const total = main.filter((event) => !stack.includes(event)).length;
  console.log(`in flight ${before} -> ${after}; ${frames} animation frames in 2 s on the main thread`);
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [name, micros] of rows) console.log(`${(micros / 1000 / Math.max(1, frames)).toFixed(2).padStart(7)} ms/frame  ${name}`);
  // Other threads' busiest slices (raster, compositor).
  const others = new Map();
  for (const event of events.filter((event) => event.ph === 'X' && event.pid === raf?.pid && event.tid !== raf?.tid)) {
    const key = `${event.tid} ${event.name}`;
    others.set(key, (others.get(key) ?? 0) + event.dur);
  }
  if (process.env.PROFILE_PAINTS) {
    const paints = main.filter((event) => event.name === 'Paint');
    const byNode = new Map();
    for (const event of paints) {
      const data = event.args?.data ?? {};
      const key = `node ${data.nodeId} layer ${data.layerId} clip ${JSON.stringify(data.clip?.map(Math.round))}`;
      const entry = byNode.get(key) ?? { count: 0, micros: 0 };
      entry.count++;
      entry.micros += event.dur;
      byNode.set(key, entry);
    }
    for (const [key, entry] of [...byNode.entries()].sort((a, b) => b[1].micros - a[1].micros).slice(0, 10)) {
      console.log(`paint ${entry.count}x ${(entry.micros / 1000).toFixed(1)} ms ${key}`);
    }
  }
  console.log('other renderer threads (total ms over 2 s, not self time):');
  for (const [name, micros] of [...others.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`${(micros / 1000).toFixed(1).padStart(8)} ms  ${name}`);
} finally {
  await close();
}
