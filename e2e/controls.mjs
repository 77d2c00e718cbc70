// Browser tests of the controls e2e/run.mjs does not click: cutting and healing a link one
// way (and both ways), the loss slider, hovering a message in the ring and in the space-time
// diagram (each highlights it in the other), a run option that restarts the run from its
// seed, and reduced motion (routes instead of travelling dots, no transitions, following the
// system setting as it changes). Every check reads what the page shows: text, the canvases'
// pixels, and the attributes the page paints from. Screenshots go to e2e/artifacts/controls-*.

import assert from 'node:assert/strict';
import { start, setRange, shot, step, waitForText } from './harness.mjs';

const { page, context, url, errors, close } = await start();
const byTestId = (id, on = page) => on.locator(`[data-testid="${id}"]`);

const nameOf = async (selector) => (await page.locator(selector).first().getAttribute('data-testid')).replace('node-', '');
const shareLink = async () => byTestId('share').getAttribute('href');
const number = async (id, on = page) => parseFloat(await byTestId(id, on).textContent());

/** Events-log lines (newest first) as { time, who, what }. */
async function events() {
  return page.locator('[data-testid="events"] li').evaluateAll((items) => items.map((item) => ({
    time: item.querySelector('.time')?.textContent,
    who: item.querySelector('.who')?.textContent,
    what: item.querySelector('.what')?.textContent,
  })));
}

/** Pixels of a canvas: how many are opaque, how many half transparent (routes are drawn at 0.5). */
async function pixels(testid, on = page) {
  return byTestId(testid, on).evaluate((canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let opaque = 0;
    let half = 0;
    for (let index = 3; index < data.length; index += 4) {
      if (data[index] >= 250) opaque++;
      else if (data[index] >= 90 && data[index] <= 170) half++;
    }
    return { opaque, half };
  });
}

/**
 * Page coordinates of painted pixels of a canvas, at most `count`, at least 6 px apart across:
 * from the top (4 px into a dot below its topmost pixel), or with `lowest` from the bottom.
 */
async function paintedPoints(testid, { lowest = false, count = 1 } = {}) {
  const found = await byTestId(testid).evaluate((canvas, { lowest, count }) => {
    const { width, height } = canvas;
    const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
    const box = canvas.getBoundingClientRect();
    const scale = box.width / width;
    const points = [];
    const rows = [...Array(height).keys()];
    for (const y of lowest ? rows.reverse() : rows) {
      for (let x = 0; x < width && points.length < count; x++) {
        const apart = points.every((point) => Math.abs(point.canvasX - x) >= 6);
        if (data[(y * width + x) * 4 + 3] >= 200 && apart) {
          points.push({ canvasX: x, x: box.left + x * scale, y: box.top + (lowest ? y - 1 : y + 4) * scale });
        }
      }
      if (points.length >= count) break;
    }
    return points;
  }, { lowest, count });
  assert.ok(found.length > 0, `nothing painted on ${testid}`);
  return found;
}

/** Waits until the screen shows `count` messages in the air (it runs behind the simulation). */
async function inTheAir(on, count = 20) {
  await on.waitForFunction((count) => parseFloat(document.querySelector('[data-testid="in-flight"]').textContent) >= count,
    count, { timeout: 30_000, polling: 'raf' });
}

const snapshot = (testid) => byTestId(testid).evaluate((canvas) => canvas.toDataURL());

try {
  await step('the page loads', async () => {
    await page.goto(url);
    await byTestId('node-5554').waitFor({ timeout: 30_000 });
    await setRange(page, 'speed', 75);
  });

  const coordinator = await nameOf('g.node.coordinator');
  const replica = await nameOf('g.node.replica');

  await step(`cut ${coordinator} → ${replica} one way, then heal it`, async () => {
    await byTestId('cut-from').selectOption({ label: coordinator });
    await byTestId('cut-to').selectOption({ label: replica });
    await byTestId('cut').click();
    await waitForText(page.locator('.network-panel .note'), `cut: ${coordinator} → ${replica}`);
    assert.equal(await page.locator('svg.ring path.cut').count(), 1, 'one arrow for a one-way cut');
    assert.doesNotMatch(await page.locator('.network-panel').textContent(), new RegExp(`${replica} → ${coordinator}`));
    assert.match(await shareLink(), /k\.\d+\.\d\.\d/);
    // apple's coordinator sends to its replicas (prepares, or for the key's first write the
    // accepts of its reserved first ballot): what goes to the cut one is blocked.
    await byTestId('receiver').selectOption({ label: coordinator });
    await byTestId('key').fill('apple');
    await byTestId('value').fill('one-way');
    await byTestId('put').click();
    await waitForText(byTestId('result'), /put apple=one-way via \d+: ok/);
    await waitForText(byTestId('events'), `message to ${replica} blocked by a cut link`);
    const blocked = (await events()).filter((line) => /blocked by a cut link/.test(line.what));
    assert.ok(blocked.every((line) => line.who === coordinator && line.what.includes(replica)),
      `only ${coordinator} → ${replica} is cut: ${JSON.stringify(blocked)}`);
    await shot(page, 'controls-01-cut');

    await byTestId('heal-link').click();
    await waitForText(page.locator('.network-panel .note'), 'no cut links');
    assert.equal(await page.locator('svg.ring path.cut').count(), 0);
    assert.match(await shareLink(), /h\.\d+\.\d\.\d/);
    const newest = (await events()).find((line) => /blocked by a cut link/.test(line.what));
    await byTestId('value').fill('healed');
    await byTestId('put').click();
    await waitForText(byTestId('result'), /put apple=healed via \d+: ok/);
    await page.waitForTimeout(500);
    const after = (await events()).find((line) => /blocked by a cut link/.test(line.what));
    assert.deepEqual(after, newest, 'a message was blocked after the link was healed');
  });

  await step('cut both ways, then heal all', async () => {
    await byTestId('cut').click();
    await byTestId('cut-from').selectOption({ label: replica });
    await byTestId('cut-to').selectOption({ label: coordinator });
    await byTestId('cut').click();
    await waitForText(page.locator('.network-panel .note'), `${replica} → ${coordinator}`);
    assert.equal(await page.locator('svg.ring path.cut').count(), 2);
    await shot(page, 'controls-02-cut-both-ways');
    await byTestId('heal-all').click();
    await waitForText(page.locator('.network-panel .note'), 'no cut links');
    assert.equal(await page.locator('svg.ring path.cut').count(), 0);
    assert.match(await shareLink(), /H\.\d+/);
  });

  await step('the loss slider loses messages, and 0% loses none', async () => {
    assert.equal((await byTestId('loss-label').textContent()).trim(), '0%');
    assert.equal(await number('lost'), 0);
    await setRange(page, 'loss', 30);
    await waitForText(byTestId('loss-label'), /^30%$/);
    assert.match(await shareLink(), /l\.\d+\.300000/);
    await byTestId('burst').click();
    await page.waitForFunction(() => parseFloat(document.querySelector('[data-testid="lost"]').textContent) > 0,
      null, { timeout: 30_000 });
    await shot(page, 'controls-03-loss');
    await setRange(page, 'loss', 0);
    await waitForText(byTestId('loss-label'), /^0%$/);
    // Messages lost before the change may still reach the screen (it runs behind the simulation).
    await page.waitForTimeout(1_000);
    const lost = await number('lost');
    await byTestId('burst').click();
    await page.waitForTimeout(2_000);
    assert.match(await page.locator('[data-testid="history"] tbody tr td.op').first().textContent(), /^put burst/);
    assert.equal(await number('lost'), lost, 'messages were lost at 0%');
  });

  await step('hovering a dot highlights its line in the diagram, and back', async () => {
    // One put, paused about half way through its messages' flights (a hop takes a few seconds
    // at this speed): the diagram's lines of messages in the air are then long enough to point
    // at apart from the others, which meet them where they start.
    await setRange(page, 'speed', 30);
    await byTestId('put').click();
    await inTheAir(page, 2);
    await page.waitForTimeout(1_000);
    await byTestId('pause').click();
    await page.waitForTimeout(200);
    // The ring: hover a dot. The diagram repaints that message's line, thicker.
    await byTestId('diagram-canvas').evaluate((canvas) => {
      window.diagramBefore = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    });
    const [dot] = await paintedPoints('ring-canvas');
    await page.mouse.move(dot.x, dot.y);
    await page.locator('[data-testid="ring-canvas"]:not([data-hovered=""])').waitFor({ timeout: 5_000 });
    const hovered = await byTestId('ring-canvas').getAttribute('data-hovered');
    assert.equal(await byTestId('diagram-canvas').getAttribute('data-hovered'), hovered);
    const tip = page.locator('.ring-stage [data-testid="flight-tip"]');
    await tip.waitFor({ state: 'visible', timeout: 5_000 });
    assert.match(await tip.textContent(), /→ \d+, sent [\d.]+ ms/);
    await page.waitForTimeout(100);
    // Where the diagram changed: the highlighted line (canvas pixels, every few along it).
    const changed = await byTestId('diagram-canvas').evaluate((canvas) => {
      const after = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const points = [];
      for (let index = 0; index < after.length; index += 4) {
        const before = window.diagramBefore;
        const difference = [0, 1, 2, 3].reduce((sum, channel) => sum + Math.abs(after[index + channel] - before[index + channel]), 0);
        if (difference > 100) {
          // Where nothing was painted before comes first: no other line passes there.
          points.push({ x: (index / 4) % canvas.width, y: Math.floor(index / 4 / canvas.width), clear: before[index + 3] === 0 });
        }
      }
      return points.sort((a, b) => Number(b.clear) - Number(a.clear));
    });
    assert.ok(changed.length > 0, 'the diagram did not highlight the message');
    await shot(page, 'controls-04-hover-ring');
    // Away from the drawings: nothing is hovered.
    await page.mouse.move(5, 5);
    await page.locator('[data-testid="ring-canvas"][data-hovered=""]').waitFor({ timeout: 5_000 });
    assert.equal(await page.locator('[data-testid="flight-tip"]').count(), 0);
    // The diagram: hover that same line (a message in the air, so the ring shows its dot). Its
    // highlight was 4 px wide; try points along it until the nearest line under the pointer is
    // this one (others may pass within a pixel or two).
    await byTestId('diagram').scrollIntoViewIfNeeded();
    await page.waitForTimeout(100);
    const ringBefore = await snapshot('ring-canvas');
    const box = await byTestId('diagram-canvas').boundingBox();
    const width = await byTestId('diagram-canvas').evaluate((canvas) => canvas.width);
    const scale = box.width / width;
    const step = Math.max(1, Math.floor(changed.length / 24));
    let found = false;
    for (let index = 0; index < changed.length && !found; index += step) {
      const { x, y } = changed[index];
      await page.mouse.move(box.x + (x + 0.5) * scale, box.y + (y + 0.5) * scale);
      found = await page.locator(`[data-testid="diagram-canvas"][data-hovered="${hovered}"]`)
        .waitFor({ timeout: 500 }).then(() => true, () => false);
    }
    assert.ok(found, `no point of the highlighted line hovers message ${hovered} in the diagram`);
    assert.equal(await byTestId('ring-canvas').getAttribute('data-hovered'), hovered);
    await page.locator('.diagram-stage [data-testid="flight-tip"]').waitFor({ state: 'visible', timeout: 5_000 });
    await page.waitForTimeout(100);
    assert.ok(await snapshot('ring-canvas') !== ringBefore, 'the ring did not highlight the message');
    await shot(page, 'controls-05-hover-diagram');
    await page.mouse.move(5, 5);
    await page.evaluate(() => window.scrollTo(0, 0));
    await setRange(page, 'speed', 75);
    await byTestId('play').click();
  });

  await step('changing R restarts the run from its seed', async () => {
    const before = await shareLink();
    const seed = before.match(/seed=(\d+)/)[1];
    assert.ok(await page.locator('[data-testid="history"] tbody tr').count() > 0);
    const clockBefore = await number('clock');
    await byTestId('config-r').fill('3');
    await byTestId('config-r').dispatchEvent('change');
    assert.equal(await byTestId('config-r').inputValue(), '3');
    await byTestId('restart').click();
    await waitForText(byTestId('result'), 'no request yet');
    assert.equal(await page.locator('[data-testid="history"] tbody tr').count(), 0);
    await waitForText(page.locator('svg.ring .ring-caption.small'), /R=3 W=2/);
    const after = await shareLink();
    assert.match(after, /[#&]r=3(&|$)/);
    assert.match(after, new RegExp(`seed=${seed}(&|$)`));
    assert.doesNotMatch(after, /log=/);
    assert.ok(await number('clock') < clockBefore, 'the clock did not start again');
    await byTestId('key').fill('apple');
    await byTestId('value').fill('fresh');
    await byTestId('put').click();
    await waitForText(byTestId('result'), /put apple=fresh via \d+: ok/);
    await byTestId('get').click();
    await waitForText(byTestId('result'), /get apple via \d+: value fresh/);
    // The history and verdict refresh a few times a second while time runs.
    await waitForText(byTestId('verdict'), /^linearizable: 2 operations/, 5_000);
    await shot(page, 'controls-06-restarted');
  });

  const operations = async () => parseInt((await byTestId('verdict').textContent()).match(/(\d+) operations/)?.[1] ?? '0', 10);
  const rows = () => page.locator('[data-testid="history"] tbody tr').count();

  await step('the scrubber goes back before two puts and forward again', async () => {
    await waitForText(byTestId('verdict'), /^linearizable: 2 operations/, 5_000);
    const before = { rows: await rows(), verdict: (await byTestId('verdict').textContent()).trim() };
    const back = parseFloat(await byTestId('scrubber').inputValue());
    await byTestId('key').fill('scrubbed');
    for (const value of ['one', 'two']) {
      await byTestId('value').fill(value);
      await byTestId('put').click();
      await waitForText(byTestId('result'), `put scrubbed=${value} via`);
      await waitForText(byTestId('result'), /: ok$/);
    }
    await waitForText(byTestId('verdict'), /^linearizable: 4 operations/, 5_000);
    const after = { rows: await rows(), verdict: (await byTestId('verdict').textContent()).trim() };
    const end = parseFloat(await byTestId('scrubber').getAttribute('max'));
    assert.ok(end > back, `the scrubber's end ${end} is past ${back}`);
    await byTestId('pause').click();
    const link = await shareLink();
    await setRange(page, 'scrubber', back);
    await page.waitForFunction((back) => {
      const clock = parseFloat(document.querySelector('[data-testid="clock"]').textContent);
      return !/replaying/.test(document.querySelector('[data-testid="scrub-state"]').textContent) && Math.abs(clock - back) < 0.01;
    }, back, { timeout: 20_000 });
    await waitForText(byTestId('verdict'), before.verdict, 5_000);
    assert.equal(await rows(), before.rows, 'the history is back to before the puts');
    assert.match(await byTestId('scrub-state').textContent(), / of /);
    assert.equal(await shareLink(), link, 'scrubbing alone keeps the whole run in the link');
    await shot(page, 'controls-09-scrubbed-back');
    const top = parseFloat(await byTestId('scrubber').getAttribute('max'));
    await setRange(page, 'scrubber', top);
    await page.waitForFunction((top) => Math.abs(parseFloat(document.querySelector('[data-testid="clock"]').textContent) - top) < 0.01,
      top, { timeout: 20_000 });
    await waitForText(byTestId('verdict'), after.verdict, 5_000);
    assert.equal(await rows(), after.rows, 'forward again: both puts are back');
    await byTestId('play').click();
  });

  const setNumber = (testid, value) => byTestId(testid).evaluate((element, value) => {
    element.value = String(value);
    element.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);

  await step('the workload generator sends gets and puts that stay linearizable, and stops', async () => {
    const start = await operations();
    await setNumber('workload-rate', 200);
    await setNumber('workload-keys', 3);
    await setNumber('workload-reads', 40);
    await byTestId('workload').click();
    await waitForText(byTestId('workload'), 'stop workload');
    await page.waitForFunction((start) => {
      const text = document.querySelector('[data-testid="verdict"]').textContent;
      return parseInt(text.match(/(\d+) operations/)?.[1] ?? '0', 10) >= start + 12;
    }, start, { timeout: 30_000 });
    assert.match(await byTestId('verdict').textContent(), /^linearizable/);
    await byTestId('workload').click();
    await waitForText(byTestId('workload'), 'start workload');
    const ops = await page.locator('[data-testid="history"] tbody tr td.op').allTextContents();
    assert.ok(ops.some((op) => /^get w[0-2]$/.test(op)) && ops.some((op) => /^put w[0-2]=v\d+$/.test(op)), ops.join(', '));
    // Its requests are in the link like any other.
    await page.waitForFunction(() => /g\.\d+\.\d\.w[0-2]/.test(location.hash), null, { timeout: 5_000 });
    await shot(page, 'controls-10-workload');
  });

  await step('the latency slider slows a put down, live', async () => {
    const putTakes = async (value) => {
      await byTestId('key').fill('slow');
      await byTestId('value').fill(value);
      await byTestId('put').click();
      await waitForText(byTestId('result'), `put slow=${value} via`);
      await waitForText(byTestId('result'), /: ok$/);
      await page.waitForTimeout(300);
      const row = page.locator('[data-testid="history"] tbody tr').filter({ hasText: `put slow=${value}` }).first();
      return parseFloat((await row.locator('td.answer').textContent()).match(/\(([\d.]+) ms\)/)[1]);
    };
    const fast = await putTakes('fast');
    await setRange(page, 'latency', 50);
    await waitForText(byTestId('latency-label'), /^5\.0 ms–50 ms$/);
    assert.match(await shareLink(), /L\.\d+\.5000\.50000/);
    const slow = await putTakes('slow');
    assert.ok(slow > 4 * fast, `a put took ${fast} ms, then ${slow} ms with 50 ms latency`);
    await shot(page, 'controls-11-latency');
    await setRange(page, 'latency', 5);
  });

  await step('the put in focus is highlighted and its quorum votes counted, to the answer', async () => {
    await setRange(page, 'speed', 60);
    await byTestId('key').fill('votes');
    await byTestId('value').fill('counted');
    await byTestId('put').click();
    const votes = byTestId('op-votes');
    // While it runs: its messages have a halo, and the readout follows its phases.
    await page.waitForFunction(() => {
      const canvas = document.querySelector('[data-testid="ring-canvas"]');
      return Number(canvas.getAttribute('data-focused')) > 0;
    }, null, { polling: 'raf', timeout: 30_000 });
    const during = await votes.textContent();
    assert.match(during, /put votes=counted/);
    await shot(page, 'controls-12-focus');
    await waitForText(votes, /put votes=counted .*accept 2\/2 · ok$/);
    await waitForText(byTestId('result'), /put votes=counted via \d+: ok/);
    const done = await votes.textContent();
    // (R was raised to 3 above: the prepare needs three promises.)
    assert.match(done, /^#\d+ put votes=counted( · prepare (\d)\/\2)? · accept 2\/2 · ok$/, done);
    // Clicking an older row of the history focuses it.
    const older = page.locator('[data-testid="history"] tbody tr').filter({ hasText: 'put slow=fast' }).first();
    await older.click();
    await waitForText(votes, /put slow=fast .*accept 2\/2 · ok$/);
    assert.match(await older.getAttribute('class'), /focus/);
    await setRange(page, 'speed', 75);
  });

  await step('reduced motion: routes instead of dots, no transitions, follows the setting', async () => {
    const reduced = await context.newPage();
    reduced.on('pageerror', (error) => errors.push(String(error)));
    await reduced.emulateMedia({ reducedMotion: 'reduce' });
    await reduced.goto(url);
    await byTestId('node-5554', reduced).waitFor({ timeout: 30_000 });
    assert.equal(await reduced.locator('.app.reduced-motion').count(), 1);
    assert.equal(await byTestId('ring-canvas', reduced).getAttribute('data-motion'), 'reduced');
    const transition = () => reduced.locator('.node-body').first().evaluate((node) => getComputedStyle(node).transitionDuration);
    assert.equal(await transition(), '0s');
    await setRange(reduced, 'speed', 30);
    await byTestId('burst', reduced).click();
    await inTheAir(reduced);
    await byTestId('pause', reduced).click();
    await reduced.waitForTimeout(200);
    const routes = await pixels('ring-canvas', reduced);
    assert.ok(routes.half >= 300 && routes.opaque * 4 < routes.half, `routes, not dots: ${JSON.stringify(routes)}`);
    await shot(reduced, 'controls-07-reduced-motion');
    // The system setting changes while the page is open: dots again.
    await reduced.emulateMedia({ reducedMotion: 'no-preference' });
    await byTestId('ring-canvas', reduced).and(reduced.locator('[data-motion="full"]')).waitFor({ timeout: 5_000 });
    assert.equal(await reduced.locator('.app.reduced-motion').count(), 0);
    assert.match(await transition(), /^0\.3s/);
    await reduced.waitForTimeout(200);
    const dots = await pixels('ring-canvas', reduced);
    assert.ok(dots.opaque >= 200 && dots.opaque > dots.half, `dots, not routes: ${JSON.stringify(dots)}`);
    await shot(reduced, 'controls-08-motion-again');
    await reduced.close();
  });

  assert.deepEqual(errors, [], 'the page logged errors');
  console.log('e2e: all control checks passed');
} catch (error) {
  await shot(page, 'controls-failure').catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  await close();
}
