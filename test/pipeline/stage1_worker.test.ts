/**
 * The panic path never hangs on its second compressor (issue 8: a stage 1
 * worker thread that died left Atomics.wait waiting forever). The worker
 * is made to exit without a word, to stall forever, or to fail
 * (LKCD_FAULT_STAGE1_WORKER, read by the worker only); `machine panic`
 * must end in bounded time, say it went on on one thread, and leave RAM
 * (the dump saved in place, the kexec boot) byte-identical to a panic with
 * a healthy worker on a copy of the same machine. The worker compresses
 * RLE and NONE dumps (GZIP dumps compress on the addon's native threads,
 * tested at the end: any number of threads gives the same RAM).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_COMPRESS_RLE, DUMP_LEVEL_ALL_RAM, WORKER_WAIT_MS } from '../../src/dump/index.js';
import { copyRoot, ensureBuilt, ok, powerOnScenario, run, sha256File, type Scenario } from '../helpers/lkcd.js';
import { runKilled } from '../helpers/steps.js';

const MiB = 1n << 20n;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-worker-'));
const S: Scenario = { mem: 32n * MiB, profile: 'database', seed: 95, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_RLE };
const LOST = 'dump: the second compressor thread stopped answering; stage 1 went on on one thread';
let base: string;
let healthy: { ram: string; stdout: string };

beforeAll(() => {
  ensureBuilt();
  base = path.join(tmp, 'base');
  powerOnScenario(base, S);
  ok(run('lkcd', base, ['config']));
  const dir = path.join(tmp, 'healthy');
  copyRoot(base, dir);
  const stdout = ok(run('machine', dir, ['panic', 'worker test']));
  healthy = { ram: sha256File(path.join(dir, 'lib', 'machine', 'ram')), stdout };
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each(['exit', 'stall', 'throw'])('the stage 1 worker %s at its first batch', (fault) => {
  it('the panic ends, says so, and leaves RAM byte-identical to a panic with a healthy worker', async () => {
    expect(healthy.stdout).not.toContain(LOST);
    const dir = path.join(tmp, fault);
    copyRoot(base, dir);
    const r = await runKilled('machine', dir, ['panic', 'worker test'], 120_000, { LKCD_FAULT_STAGE1_WORKER: fault });
    expect(r.signal, 'the panic hung').toBeNull();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(LOST);
    // The codec line names the threads stage 1 ended up with: one, once the worker is lost.
    const threadsOf = (out: string): string => out.replace(/^(dump: compressing pages with \S+ on )\d+ threads?/m, '$1N threads');
    expect(r.stdout).toMatch(/^dump: compressing pages with rle on 1 thread /m);
    expect(threadsOf(r.stdout.replace(`${LOST}\n`, ''))).toBe(threadsOf(healthy.stdout));
    expect(sha256File(path.join(dir, 'lib', 'machine', 'ram'))).toBe(healthy.ram);
    // Bounded: one wait of WORKER_WAIT_MS at most, then the work goes on without it.
    expect(r.ms).toBeLessThan(WORKER_WAIT_MS + 60_000);
  });
});

describe('a GZIP panic on the native threads', () => {
  it('leaves RAM byte-identical on one thread (LKCD_SINGLE_THREAD=1) and on every core', () => {
    const g: Scenario = { ...S, compress: DUMP_COMPRESS_GZIP };
    const gbase = path.join(tmp, 'gzip-base');
    powerOnScenario(gbase, g);
    ok(run('lkcd', gbase, ['config']));
    const envs: Array<Record<string, string>> = [{}, { LKCD_SINGLE_THREAD: '1' }];
    const rams = envs.map((env, i) => {
      const dir = path.join(tmp, `gzip-${i}`);
      copyRoot(gbase, dir);
      ok(run('machine', dir, ['panic', 'threads test'], env));
      return sha256File(path.join(dir, 'lib', 'machine', 'ram'));
    });
    expect(rams[1]).toBe(rams[0]);
  });
});
