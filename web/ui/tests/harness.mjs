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

// startExporter serves the tutorial's kube-state-metrics sample (3 nodes).
export function startExporter() {
  const body = readFileSync(join(here, 'testdata', 'kube-state-metrics.txt'));
  const srv = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(body);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ port: srv.address().port, close: () => new Promise((r) => srv.close(r)) })));
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

// startPharos runs the binary until it answers /-/ready. The rules section
// is tried first and dropped when this build has no ruler yet (the config
// parser refuses unknown sections); the result says which one runs.
export async function startPharos() {
  const bin = process.env.PHAROS_BIN;
  if (!bin || !existsSync(bin)) throw new Error('PHAROS_BIN must name a built pharos binary (see run-browser-tests.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'pharos-ui-'));
  const exporter = await startExporter();
  const rulesFile = join(dir, 'alerts.yml');
  writeFileSync(rulesFile, readFileSync(join(here, 'testdata', 'alerts-firing.yml')));
  let lastErr;
  for (const withRules of [true, false]) {
    const ports = { http: await freePort(), grpc: await freePort(), gossip: await freePort(), dead: await freePort() };
    const cfgFile = join(dir, 'pharos.yml');
    writeFileSync(cfgFile, configYAML({ httpPort: ports.http, exporterPort: exporter.port, deadPort: ports.dead, rules: withRules ? rulesFile : '' }));
    const args = [
      `-config.file=${cfgFile}`,
      `-server.http-listen=127.0.0.1:${ports.http}`,
      `-server.grpc-listen=127.0.0.1:${ports.grpc}`,
      `-notifier.cluster-bind=127.0.0.1:${ports.gossip}`,
      `-storage.path=${join(dir, 'data')}`,
      '-ring.heartbeat=1s',
    ];
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stdout.on('data', (d) => { log += d; });
    proc.stderr.on('data', (d) => { log += d; });
    let exited = null;
    proc.on('exit', (code) => { exited = code; });
    const url = `http://127.0.0.1:${ports.http}`;
    try {
      await poll(async () => {
        if (exited !== null) throw Object.assign(new Error(`pharos exited with ${exited}: ${log.slice(-2000)}`), { fatal: true });
        const r = await fetch(url + '/-/ready');
        return r.ok;
      }, { timeoutMs: 60000, what: 'pharos ready' });
    } catch (e) {
      lastErr = e;
      proc.kill('SIGKILL');
      if (withRules && /rules/.test(log)) continue;
      throw e;
    }
    return {
      url,
      dir,
      ports,
      rules: withRules,
      log: () => log,
      async stop() {
        if (exited === null) {
          const done = new Promise((r) => proc.once('exit', r));
          proc.kill('SIGTERM');
          await Promise.race([done, new Promise((r) => setTimeout(r, 15000))]);
          if (exited === null) proc.kill('SIGKILL');
        }
        await exporter.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  throw lastErr;
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
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

// watch collects the page's console errors and uncaught exceptions, and
// any request that leaves our origin, for assertions at the end of a test.
// allow404 lists URL substrings whose failed loads are expected (an
// optional endpoint that is not there yet).
export function watch(page, origin, { allow404 = [] } = {}) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const loc = m.location() || {};
    if (/Failed to load resource/.test(m.text()) && allow404.some((a) => (loc.url || '').includes(a))) return;
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
