// The visualizer's end-to-end test: load the built page in headless chromium, put and get a
// key, fail a node, put and get again, heal it, watch it recover, check the verdict, replay
// the run from its link, and catch the R=1 W=1 anomaly. Screenshots go to e2e/artifacts/.

import assert from 'node:assert/strict';
import { start, setRange, shot, step, waitForText } from './harness.mjs';

const { page, context, url, errors, close } = await start();
const byTestId = (id) => page.locator(`[data-testid="${id}"]`);

try {
  await step('the page loads with five nodes on the ring', async () => {
    await page.goto(url);
    for (const name of ['5554', '5556', '5558', '5560', '5562']) {
      await byTestId(`node-${name}`).waitFor({ timeout: 30_000 });
    }
    // A tenth of real time: a hop takes ~30 ms of wall time, a request timeout one second.
    await setRange(page, 'speed', 75);
    await shot(page, '01-loaded');
  });

  await step('put apple=red, then get it', async () => {
    await byTestId('key').fill('apple');
    await byTestId('value').fill('red');
    // The ring's canvas lists the kinds of the messages it draws. The put's messages are in the
    // air for a fraction of a second, so watch every frame, from before the click.
    const drawn = page.waitForFunction(() => {
      const kinds = document.querySelector('[data-testid="ring-canvas"]')?.dataset.kinds ?? '';
      return kinds.split(' ').some((kind) => kind === 'prepare' || kind === 'forward');
    }, null, { polling: 'raf', timeout: 10_000 });
    await byTestId('put').click();
    await drawn;
    await shot(page, '02-put-in-flight');
    await waitForText(byTestId('result'), /put apple=red via \d+: ok/);
    await byTestId('get').click();
    await waitForText(byTestId('result'), /get apple via \d+: value red/);
    await shot(page, '03-get');
  });

  const coordinator = (await page.locator('g.node.coordinator').getAttribute('data-testid')).replace('node-', '');
  await step(`fail apple's coordinator ${coordinator}`, async () => {
    await byTestId(`fail-${coordinator}`).click();
    await waitForText(byTestId(`status-${coordinator}`), 'down');
    assert.equal(await byTestId(`node-${coordinator}`).getAttribute('data-state'), 'down');
    await shot(page, '04-failed');
  });

  await step('put apple=green and get it while the coordinator is down', async () => {
    const receiver = coordinator === '5554' ? '1' : '0';
    await byTestId('receiver').selectOption(receiver);
    await byTestId('value').fill('green');
    await byTestId('put').click();
    await page.waitForTimeout(1_500);
    await shot(page, '05-put-during-failure');
    await waitForText(byTestId('result'), /put apple=green via \d+: ok/, 60_000);
    await byTestId('get').click();
    await waitForText(byTestId('result'), /get apple via \d+: value green/, 60_000);
    await waitForText(byTestId('events'), /keeps a hint of apple/);
    await shot(page, '06-get-during-failure');
  });

  await step(`heal ${coordinator}: it recovers what it missed`, async () => {
    await byTestId(`heal-${coordinator}`).click();
    await waitForText(byTestId('events'), /restarted from its disk/);
    await shot(page, '07-healing');
    await waitForText(byTestId('events'), /recovery finished/, 60_000);
    await waitForText(byTestId(`status-${coordinator}`), 'up');
    await waitForText(byTestId(`inspector-${coordinator}`), 'green', 60_000);
    await byTestId('receiver').selectOption(String(['5554', '5556', '5558', '5560', '5562'].indexOf(coordinator)));
    await byTestId('get').click();
    await waitForText(byTestId('result'), /get apple via \d+: value green/, 60_000);
  });

  await step('the history is linearizable', async () => {
    const verdict = (await byTestId('verdict').textContent()).trim();
    assert.match(verdict, /^linearizable/, verdict);
    assert.equal(await page.locator('[data-testid="history"] tbody tr').count(), 5);
    await shot(page, '08-verdict');
  });

  await step('pause, step and the keyboard', async () => {
    await byTestId('pause').click();
    const before = await byTestId('clock').textContent();
    await page.waitForTimeout(300);
    assert.equal(await byTestId('clock').textContent(), before, 'time moved while paused');
    await byTestId('step').click();
    await page.waitForTimeout(100);
    assert.notEqual(await byTestId('clock').textContent(), before, 'step did not move time');
    await page.locator('body').press(' ');
    await page.waitForTimeout(300);
    assert.equal(await byTestId('play').getAttribute('class'), 'active');
  });

  await step('the link replays the same run', async () => {
    const href = await byTestId('share').getAttribute('href');
    assert.match(href, /log=p\./);
    const replay = await context.newPage();
    await replay.goto(url + href);
    await setRange(replay, 'speed', 90);
    const rows = replay.locator('[data-testid="history"] tbody tr');
    const original = page.locator('[data-testid="history"] tbody tr');
    await replay.waitForFunction(() => !document.querySelector('[data-testid="history"] tbody tr.waiting')
      && document.querySelectorAll('[data-testid="history"] tbody tr').length === 5, null, { timeout: 60_000 });
    for (let index = 0; index < 5; index++) {
      const cells = async (locator) => (await locator.nth(index).locator('td').allTextContents()).slice(1, 4);
      assert.deepEqual(await cells(rows), await cells(original));
    }
    await shot(replay, '09-replayed');
    await replay.close();
  });

  await step('the R=1 W=1 scenario shows a violation', async () => {
    await byTestId('scenario-anomaly').click();
    await waitForText(byTestId('verdict'), /^violation/, 60_000);
    await shot(page, '10-anomaly');
  });

  assert.deepEqual(errors, [], 'the page logged errors');
  console.log('e2e: all browser checks passed');
} catch (error) {
  await shot(page, 'failure').catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  await close();
}
