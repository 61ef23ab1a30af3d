/**
 * Without gcc the machine still powers on and says once that no debug
 * vmlinux was built; `lkcd save` then keeps none and says why, as it does
 * for a vmlinux whose build ID is not the dump's; with gcc back, the next
 * power-on builds it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ok, run } from '../helpers/lkcd.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool } from '../helpers/tools.js';

const RELEASE = '5.4.0-lkcd-lowmem';
const NO_GCC = '/nonexistent/gcc';

let tmp = '';
let root = '';
let noGcc: Record<string, string> = {};

function buildIdOf(file: string): string {
  const m = /Build ID: ([0-9a-f]{40})/.exec(runTool('readelf', ['-n', file]).stdout);
  expect(m, file).not.toBeNull();
  return m![1];
}

/** lkcd config, a panic, the writeout in the new kernel, lkcd save: its stdout. */
function crashAndSave(message: string, env: Record<string, string>): string {
  ok(run('lkcd', root, ['config'], env));
  ok(run('machine', root, ['panic', message], env));
  ok(run('lkcd', root, ['config'], env));
  return ok(run('lkcd', root, ['save'], env));
}

beforeAll(() => {
  ensureBuilt();
  tmp = makeTempDir('vmlinux-cli');
  root = path.join(tmp, 'root');
  noGcc = { LKCD_CC: NO_GCC, LKCD_CACHE_DIR: path.join(tmp, 'cache-empty') };
});
afterAll(() => { if (tmp) removeTempDir(tmp); });

describe('machine power-on without gcc', () => {
  it('boots, and says once on stderr that there is no debug vmlinux and why; a second power-on says nothing', () => {
    const first = run('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '5'], noGcc);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/^kernel:\s+Linux 5\.4\.0-lkcd-lowmem /m);
    expect(first.stderr).toBe(`machine: no debug vmlinux for ${RELEASE} (${NO_GCC} not found): the machine runs without it; drgn, gdb and crash have no types for its dumps\n`);
    expect(fs.readdirSync(path.join(root, 'boot')).filter((f) => f.startsWith('vmlinux-'))).toEqual([]);
    ok(run('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '5'], noGcc));
  });

  it('lkcd save keeps no vmlinux.N and says why; lkcd show says none was saved', () => {
    const out = crashAndSave('no gcc here', noGcc);
    expect(out).toContain(`\nlkcd save: no vmlinux.0: there is no ${path.join(root, 'boot', `vmlinux-${RELEASE}`)} (${NO_GCC} not found)\n`);
    const dir = path.join(root, 'log', 'dump', '0');
    expect(fs.existsSync(path.join(dir, 'vmlinux.0'))).toBe(false);
    expect(ok(run('lkcd', root, ['show', '0']))).toMatch(/^\s+vmlinux: none saved with this dump \(the dump's kernel has build ID [0-9a-f]{40}\)$/m);
  });
});

const withGcc = needs('gcc', 'readelf');

describe.skipIf(withGcc.skip)(`a vmlinux of another build, then gcc back${withGcc.reason}`, () => {
  it('lkcd save does not keep a vmlinux whose build ID is not the dump kernel\'s, and names both IDs', () => {
    const other = path.join(tmp, 'other');
    ok(run('machine', other, ['power-on', '--mem', '64M', '--profile', 'idle', '--seed', '1']));
    const foreign = path.join(root, 'boot', `vmlinux-${RELEASE}`);
    fs.copyFileSync(path.join(other, 'boot', 'vmlinux-5.4.0-lkcd'), foreign);
    const out = crashAndSave('a foreign vmlinux', noGcc);
    const mine = buildIdOf(path.join(root, 'boot', `vmlinuz-${RELEASE}`));
    expect(out).toContain(`\nlkcd save: no vmlinux.1: ${foreign} has build ID ${buildIdOf(foreign)}, the dump's kernel ${mine}\n`);
    expect(buildIdOf(foreign)).not.toBe(mine);
    expect(fs.existsSync(path.join(root, 'log', 'dump', '1', 'vmlinux.1'))).toBe(false);
  });

  it('the next power-on with gcc builds boot/vmlinux-<release> with the vmlinuz\'s build ID, saying nothing', () => {
    ok(run('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '5'], { LKCD_CACHE_DIR: path.join(tmp, 'cache') }));
    const boot = path.join(root, 'boot');
    expect(buildIdOf(path.join(boot, `vmlinux-${RELEASE}`))).toBe(buildIdOf(path.join(boot, `vmlinuz-${RELEASE}`)));
    expect(fs.readdirSync(boot).filter((f) => f.includes('unavailable'))).toEqual([]);
    expect(fs.readdirSync(path.join(tmp, 'cache')).filter((f) => f.startsWith('vmlinux-'))).toHaveLength(1);
  });
});
