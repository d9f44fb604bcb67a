// Test harness: a real all-in-one pharos process on free loopback ports,
// a fake kube-state-metrics exporter it scrapes, a dead exporter port, and
// a headless Chromium driven by playwright-core.
//
// PHAROS_BIN and PHAROS_WRITE_BIN name the binaries (run-browser-tests.sh
// builds them); CHROMIUM_PATH overrides the browser.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const artifacts = process.env.UI_ARTIFACTS || join(here, '..', 'artifacts');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// poll retries fn until it returns a truthy value or timeoutMs passes; an
// error marked fatal ends it at once.
export async function poll(fn, { timeoutMs = 30000, intervalMs = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// startExporter serves the tutorial's kube-state-metrics sample (3 nodes)
// once showNodes() is called; before that it answers with no node, so the
// tutorial's alert can be seen inactive first.
export function startExporter() {
  const body = readFileSync(join(here, 'testdata', 'kube-state-metrics.txt'));
  const empty = Buffer.from(body.toString().split('\n').filter((l) => !l.includes('kube_node_info')).join('\n'));
  let nodes = false;
  const srv = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(nodes ? body : empty);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    port: srv.address().port,
    showNodes: () => { nodes = true; },
    close: () => new Promise((r) => srv.close(r)),
  })));
}

function configYAML({ httpPort, exporterPort, deadPort, rules }) {
  let y = `scrape:
  global:
    scrape_interval: 1s
    scrape_timeout: 900ms
    evaluation_interval: 1s
  scrape_configs:
    - job_name: pharos
      static_configs:
        - targets: ["127.0.0.1:${httpPort}"]
    - job_name: kube-state-metrics
      static_configs:
        - targets: ["127.0.0.1:${exporterPort}"]
    - job_name: node-exporter
      static_configs:
        - targets: ["127.0.0.1:${deadPort}"]
`;
  if (rules) y += `rules:\n  files: ["${rules}"]\n`;
  return y;
}

// startPharos runs the binary until it answers /-/ready, with the
// tutorial's firing rules (count(kube_node_info) > 0, for: 1m) evaluated
// every second by its ruler; opts.args are more flags.
export async function startPharos(opts = {}) {
  const bin = process.env.PHAROS_BIN;
  if (!bin || !existsSync(bin)) throw new Error('PHAROS_BIN must name a built pharos binary (see run-browser-tests.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'pharos-ui-'));
  const exporter = await startExporter();
  const rulesFile = join(dir, 'alerts.yml');
  writeFileSync(rulesFile, readFileSync(join(here, 'testdata', 'alerts-firing.yml')));
  const ports = { http: await freePort(), grpc: await freePort(), gossip: await freePort(), raft: await freePort(), dead: await freePort() };
  const cfgFile = join(dir, 'pharos.yml');
  writeFileSync(cfgFile, configYAML({ httpPort: ports.http, exporterPort: exporter.port, deadPort: ports.dead, rules: rulesFile }));
  const args = [
    `-config.file=${cfgFile}`,
    `-server.http-listen=127.0.0.1:${ports.http}`,
    `-server.grpc-listen=127.0.0.1:${ports.grpc}`,
    `-notifier.cluster-bind=127.0.0.1:${ports.gossip}`,
    `-ruler.raft-bind=127.0.0.1:${ports.raft}`,
    '-ruler.evaluation-interval=1s',
    `-storage.path=${join(dir, 'data')}`,
    '-ring.heartbeat=1s',
    // The graph's rendering test backfills a day of samples.
    '-storage.out-of-order-window=2d',
    ...(opts.args || []),
  ];
  const node = await runPharos(bin, args, `http://127.0.0.1:${ports.http}`);
  const stop = async () => {
    await node.stop();
    await exporter.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await node.ready();
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: node.url, dir, ports, exporter, log: node.log, stop };
}

// live holds the processes not yet stopped: a test runner that dies
// (a timeout, a closed pipe) still takes them with it.
const live = new Set();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

// runPharos starts one process; ready() waits for its /-/ready.
function runPharos(bin, args, url) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  let exited = null;
  proc.on('exit', (code) => { exited = code; live.delete(proc); });
  return {
    url,
    log: () => log,
    ready: () => poll(async () => {
      if (exited !== null) throw Object.assign(new Error(`pharos exited with ${exited}: ${log.slice(-2000)}`), { fatal: true });
      return (await fetch(url + '/-/ready')).ok;
    }, { timeoutMs: 90000, what: `pharos at ${url} ready` }),
    async stop() {
      if (exited !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 15000))]);
      if (exited === null) proc.kill('SIGKILL');
    },
  };
}

// startCluster runs n all-in-one nodes that form one cluster: each on its
// own loopback address (127.0.0.1, .2, ...) with the same ports, joined by
// memberlist, with one raft group of rulers and one notifier gossip
// cluster (an all-in-one node finds its notifier peers at the join hosts).
export async function startCluster(n = 3) {
  const bin = process.env.PHAROS_BIN;
  if (!bin || !existsSync(bin)) throw new Error('PHAROS_BIN must name a built pharos binary (see run-browser-tests.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'pharos-ui-cluster-'));
  const ports = { http: await freePort(), grpc: await freePort(), gossip: await freePort(), notifier: await freePort(), raft: await freePort() };
  const ips = Array.from({ length: n }, (_, i) => `127.0.0.${i + 1}`);
  const nodes = ips.map((ip, i) => runPharos(bin, [
    `-server.http-listen=${ip}:${ports.http}`,
    `-server.grpc-listen=${ip}:${ports.grpc}`,
    `-storage.path=${join(dir, 'node' + i)}`,
    `-memberlist.bind=${ip}:${ports.gossip}`,
    `-memberlist.node-name=node${i}`,
    `-memberlist.join=${ips.map((x) => `${x}:${ports.gossip}`).join(',')}`,
    '-memberlist.gossip-interval=100ms',
    '-memberlist.push-pull-interval=5s',
    '-memberlist.join-retry-interval=500ms',
    `-ring.instance-id=node${i}`,
    '-ring.replication-factor=3',
    '-ring.heartbeat=1s',
    `-notifier.cluster-bind=${ip}:${ports.notifier}`,
    '-notifier.settle-timeout=5s',
    `-ruler.raft-bind=${ip}:${ports.raft}`,
    `-ruler.peers=${ips.map((x) => `${x}:${ports.raft}`).join(',')}`,
  ], `http://${ip}:${ports.http}`));
  const stop = async () => {
    await Promise.all(nodes.map((x) => x.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((x) => x.ready()));
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, ips, stop };
}

// write pushes one sample through remote write with cmd/pharos-write.
export function write(url, series, value) {
  const bin = process.env.PHAROS_WRITE_BIN;
  if (!bin || !existsSync(bin)) throw new Error('PHAROS_WRITE_BIN must name a built pharos-write binary');
  execFileSync(bin, ['-url', url + '/api/v1/write', series, String(value)], { stdio: 'pipe' });
}

export function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const p of ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (existsSync(p)) return p;
  }
  throw new Error('no chromium found: apt-get install -y chromium, or set CHROMIUM_PATH');
}

export async function launch() {
  mkdirSync(artifacts, { recursive: true });
  // The machine has no network beyond loopback and the package registries:
  // Chromium's own background traffic (updates, sync, field trials) is
  // switched off so it does not knock on closed doors.
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-domain-reliability',
      '--disable-features=OptimizationHints,MediaRouter,Translate'],
  });
}

// watch collects the page's console errors and uncaught exceptions, and
// any request that leaves our origin, for assertions at the end of a test.
export function watch(page, origin) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const loc = m.location() || {};
    problems.push(`console error: ${m.text()} at ${loc.url || ''}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:')) problems.push(`request outside our origin: ${u}`);
  });
  return problems;
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, name + '.png'), fullPage: true });
}

// remoteWrite sends series through remote write 1.0 without any npm
// package: a hand-encoded prompb.WriteRequest in a snappy block made of
// one literal (valid snappy, just not compressed). series is a list of
// { labels: {name: value}, samples: [[ms, value], ...] }; headers are
// added to the request's (X-Scope-OrgID, say).
export async function remoteWrite(url, series, headers = {}) {
  const out = [];
  const varint = (buf, n) => {
    let v = BigInt(n);
    if (v < 0n) v += 1n << 64n;
    while (v >= 0x80n) { buf.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
    buf.push(Number(v));
  };
  const lenField = (buf, field, bytes) => { buf.push((field << 3) | 2); varint(buf, bytes.length); for (const b of bytes) buf.push(b); };
  const f64 = new DataView(new ArrayBuffer(8));
  for (const s of series) {
    const ts = [];
    for (const [name, value] of Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const l = [];
      lenField(l, 1, Buffer.from(name));
      lenField(l, 2, Buffer.from(value));
      lenField(ts, 1, l);
    }
    for (const [ms, v] of s.samples) {
      const sm = [0x09];
      f64.setFloat64(0, v, true);
      for (let i = 0; i < 8; i++) sm.push(f64.getUint8(i));
      sm.push(0x10);
      varint(sm, ms);
      lenField(ts, 2, sm);
    }
    lenField(out, 1, ts);
  }
  const raw = Buffer.from(out);
  const head = [];
  varint(head, raw.length);
  const n = raw.length - 1;
  head.push(63 << 2, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  const body = Buffer.concat([Buffer.from(head), raw]);
  const resp = await fetch(url + '/api/v1/write', {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0', ...headers },
  });
  if (!resp.ok) throw new Error(`remote write: ${resp.status} ${await resp.text()}`);
}
