// Live mode's end-to-end test: a real five-process cluster (`dynamo cluster --http`) on free
// ports of 127.0.0.1, the page it serves in headless chromium, real requests, a real SIGKILL and
// restart through the page, the checker's verdict on the live history, export and re-open of
// the run, and the control API refusing a request without the admin token. The supervisor (and
// with it every node) is killed at the end, whatever happens. Screenshots: e2e/artifacts/live-*.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, artifacts, dist, setRange, shot, step } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binary = process.env.DYNAMO ?? path.join(root, 'target', 'release', 'dynamo');
const names = ['5554', '5556', '5558', '5560', '5562'];
const LIMIT_MS = 240_000;

if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: cargo build --release -p dynamo-native`);
if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist} is missing: scripts/web.sh build`);

/**
 * Free TCP ports of 127.0.0.1 (held together so they differ, then released), below the
 * kernel's ephemeral range: a port from that range (what listening on port 0 hands out) can be
 * taken by a node's outgoing connection to a peer before the node meant to listen on it starts.
 */
async function freePorts(count) {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = parseInt(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0], 10) || ephemeralLow;
  } catch {}
  const low = 10_000;
  const span = Math.max(ephemeralLow - low, 1_000);
  const listen = (port) => new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
  const servers = [];
  const start = crypto.randomInt(span);
  for (let tried = 0; tried < span && servers.length < count; tried++) {
    const server = await listen(low + ((start + tried) % span));
    if (server) servers.push(server);
  }
  if (servers.length < count) throw new Error(`${count} free ports below ${low + span}`);
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function until(what, check, timeoutMs = 30_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dynamo-live-e2e-'));
const [httpPort, ...ports] = await freePorts(1 + 2 * names.length);
const clusterFile = path.join(work, 'cluster.toml');
fs.writeFileSync(
  clusterFile,
  [
    `data_dir = "${path.join(work, 'data')}"`,
    'replicas = 3',
    'read_quorum = 2',
    'write_quorum = 2',
    'tokens_per_node = 1',
    `secret = "${crypto.randomBytes(16).toString('hex')}"`,
    // The nodes ask every client for it: the page gets it from the supervisor it came from.
    `requirepass = "${crypto.randomBytes(12).toString('hex')}"`,
    ...names.flatMap((name, index) => [
      '',
      '[[node]]',
      `name = "${name}"`,
      `ws = "127.0.0.1:${ports[2 * index]}"`,
      `resp = "127.0.0.1:${ports[2 * index + 1]}"`,
    ]),
    '',
  ].join('\n'),
);

const base = `http://127.0.0.1:${httpPort}`;
const log = fs.openSync(path.join(artifacts, 'live-cluster.log'), 'w');
// Its own process group, so one signal stops the supervisor and every node it started.
const supervisor = spawn(binary, ['cluster', '--config', clusterFile, '--http', `127.0.0.1:${httpPort}`, '--web', dist], {
  cwd: root,
  detached: true,
  stdio: ['ignore', log, log],
});
let supervisorExited = false;
supervisor.on('exit', () => { supervisorExited = true; });

async function stopCluster() {
  if (!supervisorExited) {
    try { process.kill(-supervisor.pid, 'SIGTERM'); } catch {}
    await until('the cluster to stop', async () => supervisorExited, 5_000, 100).catch(() => {});
  }
  // Whatever is left of the group (a node that ignored SIGTERM) goes now.
  try { process.kill(-supervisor.pid, 'SIGKILL'); } catch {}
  fs.closeSync(log);
  fs.rmSync(work, { recursive: true, force: true });
}

const cluster = async () => (await fetch(`${base}/api/cluster`)).json();
const upOf = async (name) => (await cluster()).nodes.find((node) => node.name === name).up;

let browser;
const guard = setTimeout(async () => {
  console.error(`live e2e: gave up after ${LIMIT_MS / 1000} s`);
  await browser?.close();
  await stopCluster();
  process.exit(2);
}, LIMIT_MS);

try {
  await step('the supervisor serves the page and every node is up', async () => {
    await until('/api/cluster with every node up', async () => {
      const answer = await cluster();
      return answer.nodes.length === names.length && answer.nodes.every((node) => node.up);
    }, 60_000);
  });

  await step('POST /api/control without the token is refused', async () => {
    const response = await fetch(`${base}/api/control`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'kill', node: '5554' }),
    });
    assert.equal(response.status, 401);
    assert.ok((await response.json()).error);
    assert.equal(await upOf('5554'), true);
  });

  browser = await launch({ limitMs: LIMIT_MS });
  const { page, errors } = browser;
  const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
  const waitForText = (locator, pattern, timeout = 30_000) =>
    locator.filter({ hasText: pattern }).first().waitFor({ timeout });

  await step('the page opens in Live mode and connects to every node', async () => {
    await page.goto(`${base}/`);
    await page.locator('.app[data-mode="live"]').waitFor({ timeout: 30_000 });
    assert.equal(await byTestId('mode-live').getAttribute('class'), 'active');
    for (const name of names) await waitForText(byTestId(`status-${name}`), /^up$/);
    await shot(page, 'live-01-connected');
  });

  await step('put apple=red and get it through a real node', async () => {
    await byTestId('key').fill('apple');
    await byTestId('value').fill('red');
    await byTestId('put').click();
    await waitForText(byTestId('result'), /put apple=red via 5554: ok/);
    await byTestId('get').click();
    await waitForText(byTestId('result'), /get apple via 5554: value red/);
    // Real messages were drawn from the nodes' trace streams (painted on the diagram's canvas).
    await until('messages in the space-time diagram', async () =>
      page.locator('[data-testid="diagram-canvas"]').evaluate((canvas) => {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let index = 3; index < data.length; index += 4) if (data[index] >= 200) return true;
        return false;
      }));
    await shot(page, 'live-02-put-get');
    console.log(`  screen lag: ${await byTestId('lag').textContent()}`);
  });

  await step('Live mode follows the operation in focus and counts its quorum votes', async () => {
    const votes = byTestId('op-votes');
    // The newest request (the get) is in focus until a row is clicked.
    await waitForText(votes, /^#2 get apple · read 2\/2( · repair 2\/2)? · value red$/);
    const put = page.locator('[data-testid="history"] tbody tr').filter({ hasText: 'put apple=red' }).first();
    await put.click();
    await waitForText(votes, /^#1 put apple=red( · prepare 2\/2)? · accept 2\/2 · ok$/);
    assert.match(await put.getAttribute('class'), /focus/);
    await shot(page, 'live-02b-focus');
  });

  const victim = (await page.locator('g.node.coordinator').getAttribute('data-testid')).replace('node-', '');
  const receiver = victim === '5554' ? '5556' : '5554';
  await step(`fail apple's coordinator ${victim}: its process is killed`, async () => {
    await byTestId(`fail-${victim}`).click();
    await until(`${victim} down in /api/cluster`, async () => (await upOf(victim)) === false, 10_000);
    await waitForText(byTestId(`status-${victim}`), /^down$/);
    await shot(page, 'live-03-failed');
  });

  await step('put and get still succeed while it is down', async () => {
    await byTestId('receiver').selectOption(String(names.indexOf(receiver)));
    await byTestId('value').fill('green');
    await byTestId('put').click();
    await waitForText(byTestId('result'), new RegExp(`put apple=green via ${receiver}: ok`));
    await byTestId('key').fill('pear');
    await byTestId('value').fill('yellow');
    await byTestId('put').click();
    await waitForText(byTestId('result'), new RegExp(`put pear=yellow via ${receiver}: ok`));
    await byTestId('key').fill('apple');
    await byTestId('get').click();
    await waitForText(byTestId('result'), new RegExp(`get apple via ${receiver}: value green`));
    // The write's home that is down gets it as a hint on a fallback, value and all (the page
    // once read a `value` the node never sent, and showed every hint without one).
    await waitForText(page.locator('.inspector .hints li'), new RegExp(`^apple = green for ${victim}$`), 30_000);
    await shot(page, 'live-04-during-failure');
    console.log(`  screen lag: ${await byTestId('lag').textContent()}`);
  });

  await step(`heal ${victim}: it restarts, recovers, and holds the writes`, async () => {
    await byTestId(`heal-${victim}`).click();
    await until(`${victim} up in /api/cluster`, async () => (await upOf(victim)) === true, 20_000);
    await waitForText(byTestId(`status-${victim}`), /^(up|recovering)$/);
    await waitForText(byTestId('events'), new RegExp(`${victim}.*(recovery|recovered)`), 30_000);
    await shot(page, 'live-05-healing');
    await waitForText(byTestId(`inspector-${victim}`), 'green', 30_000);
    await byTestId('receiver').selectOption(String(names.indexOf(victim)));
    await byTestId('get').click();
    await waitForText(byTestId('result'), new RegExp(`get apple via ${victim}: value green`), 30_000);
  });

  await step('the live history is linearizable', async () => {
    await until('every request answered', async () =>
      (await page.locator('[data-testid="history"] tbody tr.waiting').count()) === 0);
    const verdict = (await byTestId('verdict').textContent()).trim();
    assert.match(verdict, /^linearizable: 6 operations/, verdict);
    assert.equal(await page.locator('[data-testid="history"] tbody tr').count(), 6);
    assert.match(await byTestId('dropped').textContent(), /^\d+ events dropped$/);
    await shot(page, 'live-06-verdict');
  });

  await step('cut a link one way through the supervisor, then heal every link', async () => {
    await byTestId('cut-from').selectOption('0');
    await byTestId('cut-to').selectOption('1');
    await byTestId('cut').click();
    await waitForText(page.locator('.network-panel'), 'cut: 5554 → 5556', 10_000);
    await byTestId('heal-all').click();
    await waitForText(page.locator('.network-panel'), 'no cut links', 10_000);
  });

  await step('export the run, then open it as a recording', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), byTestId('export').click()]);
    const file = path.join(artifacts, 'live-run.json');
    await download.saveAs(file);
    const recording = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(recording.format, 'dynamo-live-run');
    assert.deepEqual(recording.cluster.nodes.map((node) => node.name), names);
    assert.equal(recording.history.operations.length, 6);
    assert.ok(recording.events.some((event) => typeof event.kind === 'object' && 'MessageSent' in event.kind), 'no messages recorded');
    // Real time: the replay slows down only while messages are in the air, and 1x keeps it short.
    await setRange(page, 'speed', 100);
    await byTestId('open-trace').setInputFiles(file);
    await page.locator('.app[data-mode="replay"]').waitFor({ timeout: 10_000 });
    await waitForText(byTestId('verdict'), /^linearizable: 6 operations/);
    await until('the replay to answer every request', async () =>
      (await page.locator('[data-testid="history"] tbody tr.done').count()) === 6, 60_000);
    await shot(page, 'live-07-replay');
    await byTestId('mode-live').click();
    await page.locator('.app[data-mode="live"]').waitFor({ timeout: 5_000 });
  });

  // A killed node's socket fails to reconnect until it is back: chromium logs each attempt.
  const unexpected = errors.filter((error) => !/WebSocket connection to .* failed/.test(error));
  assert.deepEqual(unexpected, [], 'the page logged errors');
  console.log('live e2e: all checks passed against a real cluster');
} catch (error) {
  if (browser) await shot(browser.page, 'live-failure').catch(() => {});
  console.error(error);
  process.exitCode = 1;
} finally {
  clearTimeout(guard);
  await browser?.close();
  await stopCluster();
}
