// Copies the UI's npm libraries from node_modules into ../static/vendor,
// where the Go binary embeds them, and records name, version and sha256 of
// each copy in ../static/vendor/VERSIONS.json. The Go test in package web
// checks the copies against that file and package.json.
//
// hooks.mjs imports the bare specifier "preact"; it is rewritten to the
// sibling file because an import map would need an inline script, which the
// pages' Content-Security-Policy forbids.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'static', 'vendor');
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));

const files = [
  { pkg: 'preact', from: 'dist/preact.mjs', to: 'preact.mjs' },
  { pkg: 'preact', from: 'hooks/dist/hooks.mjs', to: 'preact-hooks.mjs', rewrite: (s) => s.replace(/from\s*"preact"/g, 'from"./preact.mjs"') },
  { pkg: 'preact', from: 'LICENSE', to: 'preact.LICENSE' },
  { pkg: 'htm', from: 'dist/htm.mjs', to: 'htm.mjs' },
  { pkg: 'htm', from: 'LICENSE', to: 'htm.LICENSE' },
  { pkg: 'uplot', from: 'dist/uPlot.esm.js', to: 'uPlot.esm.js' },
  { pkg: 'uplot', from: 'dist/uPlot.min.css', to: 'uPlot.min.css' },
  { pkg: 'uplot', from: 'LICENSE', to: 'uPlot.LICENSE' },
];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const manifest = {};
for (const f of files) {
  const dir = join(here, 'node_modules', f.pkg);
  const version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  if (version !== pkg.dependencies[f.pkg]) {
    throw new Error(`${f.pkg}: node_modules has ${version}, package.json pins ${pkg.dependencies[f.pkg]}: run npm ci`);
  }
  let body = readFileSync(join(dir, f.from), 'utf8');
  if (f.rewrite) body = f.rewrite(body);
  // The maps are not shipped; a dangling reference only makes 404s.
  if (f.to.endsWith('.mjs') || f.to.endsWith('.js')) body = body.replace(/\n?\/\/# sourceMappingURL=\S*\s*$/, '\n');
  writeFileSync(join(out, f.to), body);
  manifest[f.to] = { package: f.pkg, version, source: f.from, sha256: createHash('sha256').update(body).digest('hex') };
}
writeFileSync(join(out, 'VERSIONS.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`vendored ${files.length} files into ${out}`);
