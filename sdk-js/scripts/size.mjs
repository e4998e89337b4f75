// Size gate: minified + `gzip -9 -n` bytes of the builds, as one JSON line; fails over the budget.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const LIMIT = 5120; // the design's "under 5 KB gzipped" for the full IIFE build
const GOAL = 4096;
const dist = new URL('../dist/', import.meta.url).pathname;
const measure = (file) => ({
  min: readFileSync(dist + file).length,
  gzip: execFileSync('gzip', ['-9', '-n', '-c', dist + file]).length,
});
const iife = measure('radixinsight.min.js');
const esm = measure('radixinsight.esm.js');
const ok = iife.gzip <= LIMIT;
console.log(JSON.stringify({
  iife_min_bytes: iife.min, iife_gzip_bytes: iife.gzip, esm_min_bytes: esm.min, esm_gzip_bytes: esm.gzip,
  limit_bytes: LIMIT, goal_bytes: GOAL, within_limit: ok, within_goal: iife.gzip <= GOAL,
}));
if (!ok) process.exitCode = 1;
