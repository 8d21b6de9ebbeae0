// Builds the UI into an output directory (default ../server/ui/dist):
//
//   index.html                  src/index.html with the bundle's names filled in
//   assets/main-<hash>.js       the whole program, minified (ES2020 module)
//   assets/main-<hash>.css      its styles (ours, CodeMirror's are in the JS)
//   assets/licenses.txt         the licences of the bundled packages
//
// The build is reproducible byte for byte: esbuild's output depends only on
// the sources and its own version (pinned in package-lock.json); file names
// carry a hash of their content, never a time; nothing here reads the
// clock, the environment or absolute paths. `make ui-check` relies on it:
// it builds into a temporary directory and compares with the committed one.
//
// Usage: node build.mjs [outdir]
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(here, '..', 'server', 'ui', 'dist'));

rmSync(outdir, { recursive: true, force: true });
mkdirSync(join(outdir, 'assets'), { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/main.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  outdir: join(outdir, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  // Licence comments go to one file of our own (below), not into the code.
  legalComments: 'none',
  charset: 'utf8',
  metafile: true,
  logLevel: 'warning',
});

// The names of the two outputs, relative to the output directory.
const outputs = Object.keys(result.metafile.outputs).map((p) => 'assets/' + basename(p));
const js = outputs.find((p) => p.endsWith('.js'));
const css = outputs.find((p) => p.endsWith('.css'));
if (!js || !css) {
  throw new Error(`expected one .js and one .css output, got ${outputs.join(', ')}`);
}

// Licences of every package in the bundle, sorted by name so that the file
// does not depend on the order esbuild visited them in.
const pkgs = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) pkgs.set(m[1], join(here, 'node_modules', m[1]));
}
let licenses = 'Third-party packages bundled into Myelin\'s UI, with their licences.\n';
for (const name of [...pkgs.keys()].sort()) {
  const dir = pkgs.get(name);
  const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = readdirSync(dir).filter((f) => /^licen[cs]e/i.test(f)).sort()[0];
  licenses += `\n==== ${name} ${pj.version} (${pj.license ?? 'see below'})\n\n`;
  licenses += file ? readFileSync(join(dir, file), 'utf8').trim() + '\n' : '(no licence file in the package)\n';
}
const licensesName = `assets/licenses-${createHash('sha256').update(licenses).digest('hex').slice(0, 8)}.txt`;
writeFileSync(join(outdir, licensesName), licenses);

const html = readFileSync(join(here, 'src', 'index.html'), 'utf8')
  .replaceAll('%JS%', '/ui/' + js)
  .replaceAll('%CSS%', '/ui/' + css)
  .replaceAll('%LICENSES%', '/ui/' + licensesName);
writeFileSync(join(outdir, 'index.html'), html);

for (const f of ['index.html', js, css, licensesName]) {
  const b = readFileSync(join(outdir, f));
  console.log(`${f.padEnd(32)} ${String(b.length).padStart(8)} bytes`);
}
