/**
 * The machine lock (issue 8, item 5: two `machine panic` at once both
 * exited 0 and every dump was lost). One command at a time touches a
 * machine: a second one, even a read-only `machine status`, gets exit 75
 * (BUSY) at once with one line naming the holder's pid and command, never
 * a hang; the first runs to its end and exactly one dump is kept, equal to
 * RAM before the panic (truth taken on a twin).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM } from '../../src/dump/index.js';
import {
  checkAgainstTruth, cleanFailure, copyRoot, dumpDirOf, ensureBuilt, ok, powerOnScenario, run, type Scenario, type Truth,
} from '../helpers/lkcd.js';
import { EX_TEMPFAIL_BUSY, machineLeftovers, runKilled, truthOfPanic, type TimedRun } from '../helpers/steps.js';

const MiB = 1n << 20n;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-lock-'));
const S: Scenario = { mem: 64n * MiB, profile: 'database', seed: 91, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
let base: string;
let truth: Truth;
beforeAll(() => {
  ensureBuilt();
  base = path.join(tmp, 'base');
  powerOnScenario(base, S);
  ok(run('lkcd', base, ['config']));
  truth = truthOfPanic(base, path.join(tmp, 'twin'), 'first');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * The first panic deflates at panic on one thread (LKCD_PANIC_CODEC=gzip, LKCD_SINGLE_THREAD=1): the
 * slowest stage 1 there is, so it still holds the lock when the second command's Node has started.
 * The bytes it leaves are the same as with any codec and threads once written out.
 */
const SLOW_PANIC = { LKCD_PANIC_CODEC: 'gzip', LKCD_SINGLE_THREAD: '1' };

/** Starts `machine panic first`, waits until it holds the lock, then runs `second` while it runs. */
async function whileFirstPanics(dir: string, second: () => Promise<TimedRun>): Promise<{ first: TimedRun; second: TimedRun; overlapped: boolean }> {
  const lock = path.join(dir, 'lib', 'machine', 'lock');
  const firstP = runKilled('machine', dir, ['panic', 'first'], null, SLOW_PANIC);
  let done = false;
  void firstP.then(() => { done = true; });
  const t0 = Date.now();
  while (!fs.existsSync(lock) && !done && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 2));
  const overlapped = fs.existsSync(lock) && !done;
  const s = await second();
  return { first: await firstP, second: s, overlapped };
}

describe('two commands at once on one machine', () => {
  it('two machine panic: one runs, the other gets BUSY naming it; one dump kept, equal to RAM before the panic', async () => {
    const dir = path.join(tmp, 'two-panics');
    copyRoot(base, dir);
    const r = await whileFirstPanics(dir, () => runKilled('machine', dir, ['panic', 'second'], null));
    expect(r.overlapped, 'the second command started while the first held the lock').toBe(true);
    ok(r.first);
    expect(r.first.stdout).toContain('saved dump reserved at');
    const line = cleanFailure(r.second, 'machine', EX_TEMPFAIL_BUSY, 'is busy', `'machine panic first'`);
    expect(line).toMatch(/pid \d+ is running 'machine panic first'/);
    expect(r.second.stdout).toBe('');
    expect(r.second.ms, 'BUSY comes at once, not after waiting').toBeLessThan(r.first.ms);
    ok(run('lkcd', dir, ['config']));
    ok(run('lkcd', dir, ['save']));
    const list = JSON.parse(ok(run('lkcd', dir, ['list', '--json']))) as Array<{ n: number; panic_string: string }>;
    expect(list.map((d) => [d.n, d.panic_string])).toEqual([[0, 'first']]);
    expect(checkAgainstTruth(path.join(dumpDirOf(dir), '0', 'dump.0'), truth.snap, S.level)).toEqual([]);
    expect(machineLeftovers(dir)).toEqual([]);
  });

  it('machine status while a panic runs gets BUSY (it would read a half-written step); after it, status works', async () => {
    const dir = path.join(tmp, 'panic-status');
    copyRoot(base, dir);
    const r = await whileFirstPanics(dir, () => runKilled('machine', dir, ['status'], null));
    expect(r.overlapped).toBe(true);
    ok(r.first);
    cleanFailure(r.second, 'machine', EX_TEMPFAIL_BUSY, `'machine panic first'`);
    expect(ok(run('machine', dir, ['status']))).toMatch(/^machine: /);
  });

  it('lkcd config and kexec while a panic runs get BUSY too', async () => {
    const dir = path.join(tmp, 'panic-others');
    copyRoot(base, dir);
    const r = await whileFirstPanics(dir, async () => {
      const [config, kexec] = await Promise.all([runKilled('lkcd', dir, ['config'], null), runKilled('kexec', dir, ['-s'], null)]);
      return { ...config, stdout: config.stdout, stderr: `${config.stderr}${kexec.stderr}`, status: config.status === EX_TEMPFAIL_BUSY && kexec.status === EX_TEMPFAIL_BUSY ? EX_TEMPFAIL_BUSY : -1 };
    });
    expect(r.overlapped).toBe(true);
    ok(r.first);
    expect(r.second.status).toBe(EX_TEMPFAIL_BUSY);
    expect(r.second.stderr.split('\n').filter(Boolean).every((l) => /^(lkcd|kexec): the machine at .* is busy: pid \d+ is running 'machine panic first'/.test(l))).toBe(true);
  });
});
