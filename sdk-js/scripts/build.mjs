// Builds dist/: radixinsight.esm.js (ES module), radixinsight.min.js (IIFE for a script tag), *.d.ts.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(root + 'package.json', 'utf8'));
rmSync(root + 'dist', { recursive: true, force: true });

const common = {
  absWorkingDir: root,
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  define: { __VERSION__: JSON.stringify(version) },
};
await build({ ...common, entryPoints: ['src/index.ts'], format: 'esm', outfile: 'dist/radixinsight.esm.js' });
await build({ ...common, entryPoints: ['src/global.ts'], format: 'iife', outfile: 'dist/radixinsight.min.js' });
execFileSync(root + 'node_modules/.bin/tsc', ['-p', root], { stdio: 'inherit' });
