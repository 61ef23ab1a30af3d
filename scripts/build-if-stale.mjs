#!/usr/bin/env node
// npm start's prestart: runs `tsc -p .` only when dist/ is missing a CLI or is older than a
// source (a .ts under src/, lkcd/ or kexec/, tsconfig.json, package.json), so a second
// `npm start` with nothing changed does not spend seconds rebuilding.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outputs = ['dist/lkcd/start.js', 'dist/lkcd/main.js', 'dist/src/cli/machine.js', 'dist/kexec/main.js', 'dist/kexec/kdumpctl.js'];

function newestSource() {
  let newest = 0;
  for (const f of ['tsconfig.json', 'package.json']) newest = Math.max(newest, fs.statSync(path.join(repo, f)).mtimeMs);
  for (const dir of ['src', 'lkcd', 'kexec']) {
    for (const name of fs.readdirSync(path.join(repo, dir), { recursive: true })) {
      if (String(name).endsWith('.ts')) newest = Math.max(newest, fs.statSync(path.join(repo, dir, String(name))).mtimeMs);
    }
  }
  return newest;
}

function oldestOutput() {
  let oldest = Infinity;
  for (const f of outputs) {
    const st = fs.statSync(path.join(repo, f), { throwIfNoEntry: false });
    if (!st) return 0;
    oldest = Math.min(oldest, st.mtimeMs);
  }
  return oldest;
}

if (oldestOutput() >= newestSource()) process.exit(0);
process.stderr.write('start: dist/ is older than the sources: building (tsc -p .)\n');
const r = spawnSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', repo], { stdio: 'inherit' });
process.exit(r.status ?? 1);
