#!/usr/bin/env node
// Finds the test files and runs them with node:test through tsx.
// Node 20's --test does not expand quoted globs, so the files are listed here.
//   node scripts/run-tests.mjs            every test: packages/*/test and test/
//   node scripts/run-tests.mjs --unit     only the packages' unit tests
//   node scripts/run-tests.mjs FILE...    just those files
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const explicit = args.filter((a) => !a.startsWith('--'));

function findTests(dir) {
  let found = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return found;
  }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found = found.concat(findTests(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

let files = explicit;
if (files.length === 0) {
  const packages = readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'test'));
  const dirs = unitOnly ? packages : [...packages, join(root, 'test')];
  files = dirs
    .flatMap(findTests)
    .map((f) => relative(root, f))
    .sort();
}
if (files.length === 0) {
  process.stderr.write('no test files found\n');
  process.exit(1);
}

const concurrency = process.env.DRP_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
