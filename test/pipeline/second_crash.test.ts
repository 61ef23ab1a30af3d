/**
 * A second crash is a second dump (issue 15: `npm start` twice on a fresh
 * clone left only dump 0, because power-on started the clock at the same
 * instant and `lkcd save` took the second, byte-identical dump for the
 * first).
 *
 * - The README's flow twice on a fresh root gives dumps 0 and 1 whose
 *   crash times (dh_time, decoded from dump.N in the test) differ and
 *   follow the RTC (lib/machine/rtc, decoded in the test) read before each
 *   panic; `lkcd save` run twice after one crash still gives one dump. The
 *   second power-on's RAM differs from the first's at exactly the 8 bytes
 *   of sim_boot_time (found in System.map), which hold the RTC + 1 s.
 * - `npm start` (the built start script) twice on a fresh root leaves
 *   DUMPDIR/0 and DUMPDIR/1.
 * - A device dump identical to a saved one but not marked saved on the
 *   device (restored from a copy) is saved as a new N with same_as naming
 *   the first; killed at every kill point of `lkcd save`, the rerun
 *   finishes that same N: never a third dump, never "marked saved as 0".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copyRoot, deviceOf, dumpDirOf, dumpLikeEntries, ensureBuilt, ok, REPO, run, SAVED_FILES, sha256File,
} from '../helpers/lkcd.js';
import { dumpTimeNs, nsOf, readMarkFacts, readRtcFacts, RTC_EPOCH, type RtcReading } from '../helpers/rtc.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-second-'));
beforeAll(() => ensureBuilt());
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const POWER_ON = ['power-on', '--mem', '32M', '--profile', 'database', '--seed', '7'];

interface Listed { n: number; sha256: string; time_sec: number; time_usec: number; same_as: number | null }
const list = (root: string): Listed[] => JSON.parse(ok(run('lkcd', root, ['list', '--json']))) as Listed[];

/** Physical address of a kernel data symbol of the first kernel (phys_base 0), from the root's System.map. */
function symbolPhys(root: string, name: string): number {
  const boot = path.join(root, 'boot');
  const map = fs.readdirSync(boot).find((f) => f.startsWith('System.map-'))!;
  const line = fs.readFileSync(path.join(boot, map), 'utf8').split('\n').find((l) => l.endsWith(` ${name}`));
  expect(line, `${name} in ${map}`).toBeDefined();
  return Number(BigInt(`0x${line!.split(' ')[0]}`) - 0xffffffff80000000n);
}

/** Byte offsets where two equally long files differ. */
function differingBytes(a: string, b: string): number[] {
  const x = fs.readFileSync(a);
  const y = fs.readFileSync(b);
  expect(x.length).toBe(y.length);
  const out: number[] = [];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) out.push(i);
  return out;
}

describe('the README flow twice on a fresh root', () => {
  const root = path.join(tmp, 'readme');
  const ram = (i: number): string => path.join(tmp, `ram-after-power-on-${i}`);
  const rtcAtPanic: bigint[] = [];
  const rtcAtPowerOn: Array<RtcReading | null> = [];
  const saves: string[][] = [];

  beforeAll(() => {
    for (let i = 0; i < 2; i++) {
      rtcAtPowerOn.push(readRtcFacts(root));
      ok(run('machine', root, POWER_ON));
      fs.copyFileSync(path.join(root, 'lib', 'machine', 'ram'), ram(i));
      ok(run('lkcd', root, ['config']));
      rtcAtPanic.push(nsOf(readRtcFacts(root)!));
      ok(run('machine', root, ['panic', 'Fatal exception in interrupt']));
      ok(run('lkcd', root, ['config']));
      saves.push([ok(run('lkcd', root, ['save'])), ok(run('lkcd', root, ['save']))]);
    }
  });

  it('lkcd save run twice after one crash gives one dump: the second finds it already saved', () => {
    const dumpdir = dumpDirOf(root);
    expect(saves[0][0]).toMatch(new RegExp(`^lkcd save: saved dump 0 to ${path.join(dumpdir, '0')}: `));
    expect(saves[0][1]).toBe(`lkcd save: the dump on ${deviceOf(root)} was already saved as 0\n`);
    expect(saves[1][0]).toMatch(new RegExp(`^lkcd save: saved dump 1 to ${path.join(dumpdir, '1')}: `));
    expect(saves[1][0]).not.toContain('byte-identical');
    expect(saves[1][1]).toBe(`lkcd save: the dump on ${deviceOf(root)} was already saved as 1\n`);
    expect(dumpLikeEntries(root)).toEqual(['0', '1']);
    expect(fs.readFileSync(path.join(dumpdir, 'bounds'), 'utf8')).toBe('2\n');
  });

  it('the two crashes are two dumps with different crash times, each at or after the RTC before its panic', () => {
    const files = [0, 1].map((n) => path.join(dumpDirOf(root), String(n), `dump.${n}`));
    const times = files.map(dumpTimeNs);
    expect(times[1]).toBeGreaterThan(times[0]);
    expect(times[0]).toBeGreaterThanOrEqual(rtcAtPanic[0]);
    expect(times[1]).toBeGreaterThanOrEqual(rtcAtPanic[1]);
    // The second machine booted after the first one's crash.
    expect(rtcAtPanic[1]).toBeGreaterThan(times[0]);
    expect(sha256File(files[0])).not.toBe(sha256File(files[1]));
    const rows = list(root);
    expect(rows.map((d) => [d.n, d.same_as])).toEqual([[0, null], [1, null]]);
    expect(rows.map((d) => BigInt(d.time_sec) * 1_000_000_000n + BigInt(d.time_usec) * 1000n)).toEqual(times);
  });

  it('the second power-on with the same seed differs from the first only in sim_boot_time, which holds the RTC + 1 s, rounded up', () => {
    const at = symbolPhys(root, 'sim_boot_time');
    const diff = differingBytes(ram(0), ram(1));
    expect(diff.length).toBeGreaterThan(0);
    expect(diff.every((o) => o >= at && o < at + 8), `differing bytes at ${diff.slice(0, 8).map((o) => o.toString(16)).join(', ')}`).toBe(true);
    const bootTimes = [0, 1].map((i) => fs.readFileSync(ram(i)).readBigUInt64LE(at));
    // A new root's RTC starts at the fixed epoch; the second boot reads it where the first machine
    // left it, plus at least the second a boot takes, in whole seconds.
    expect(rtcAtPowerOn[0]).toBeNull();
    expect(bootTimes[0]).toBe(RTC_EPOCH + 1n);
    const left = rtcAtPowerOn[1]!;
    expect(bootTimes[1]).toBe(left.sec + 1n + (left.nsec > 0 ? 1n : 0n));
  });

  it('a power-on with the same seed on another fresh root is byte-identical to the first one, RTC included', () => {
    const other = path.join(tmp, 'readme-twin');
    ok(run('machine', other, POWER_ON));
    const ramOf = (r: string): Buffer => fs.readFileSync(path.join(r, 'lib', 'machine', 'ram'));
    expect(ramOf(other).equals(fs.readFileSync(ram(0)))).toBe(true);
    // Its RTC moved on from the epoch with the kernel's clock (boot and workload).
    expect(readRtcFacts(other)!.sec).toBeGreaterThan(RTC_EPOCH);
    const again = path.join(tmp, 'readme-twin-2');
    ok(run('machine', again, POWER_ON));
    expect(ramOf(again).equals(ramOf(other))).toBe(true);
    expect(fs.readFileSync(path.join(again, 'lib', 'machine', 'rtc')).equals(fs.readFileSync(path.join(other, 'lib', 'machine', 'rtc')))).toBe(true);
  });
});

describe('npm start twice on a fresh root', () => {
  /** The start script as `npm start -- ARGS` runs it. */
  const start = (root: string, ...args: string[]): string => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'lkcd', 'start.js'), '--root', root, '--mem', '32M', '--seconds', '2', ...args],
      { cwd: REPO, encoding: 'utf8', timeout: 300_000, env: { ...process.env, LKCD_NO_PROGRESS: '1' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The summary folds its lines at 80 columns (continuations indented 12): read each item as one line.
    return r.stdout.replace(/\n {12}(?=\S)/g, ' ');
  };

  it('leaves log/dump/0 and log/dump/1, two dumps of two crashes', () => {
    const root = path.join(tmp, 'start');
    const dumpdir = dumpDirOf(root);
    expect(start(root)).toContain(`  files     ${path.join(dumpdir, '0', 'dump.0')} (+ map.0,`);
    expect(start(root)).toContain(`  files     ${path.join(dumpdir, '1', 'dump.1')} (+ map.1,`);
    expect(dumpLikeEntries(root)).toEqual(['0', '1']);
    for (const n of [0, 1]) for (const f of SAVED_FILES(n)) expect(fs.existsSync(path.join(dumpdir, String(n), f)), f).toBe(true);
    const rows = list(root);
    expect(rows.map((d) => [d.n, d.same_as])).toEqual([[0, null], [1, null]]);
    expect(dumpTimeNs(path.join(dumpdir, '1', 'dump.1'))).toBeGreaterThan(dumpTimeNs(path.join(dumpdir, '0', 'dump.0')));
  });

  it('with --pstore, each crash\'s records are archived and linked to its own dump, though their bytes are the same', () => {
    const root = path.join(tmp, 'start-pstore');
    const archived = (out: string): string => /^ {2}pstore {4}archived 3 records to (\S+): /m.exec(out)![1];
    const first = start(root, '--pstore');
    const second = start(root, '--pstore');
    expect(first).toMatch(/^ {2}pstore {4}the crash's full dump is dump 0$/m);
    expect(second).toMatch(/^ {2}pstore {4}the crash's full dump is dump 1$/m);
    const dirs = [archived(first), archived(second)];
    expect(dirs[1]).not.toBe(dirs[0]);
    // The records' text carries no time (pstorefs gives it as the mtime): the two dmesg files are identical.
    expect(fs.readFileSync(path.join(dirs[0], 'dmesg-ramoops-0')).equals(fs.readFileSync(path.join(dirs[1], 'dmesg-ramoops-0')))).toBe(true);
    const rows = JSON.parse(ok(run('lkcd', root, ['pstore', 'list', '--json']))) as Array<{ dir: string; file: string; dump_n: number | null }>;
    expect(rows.map((r) => [path.basename(r.dir) === path.basename(dirs[0]) ? 0 : 1, r.file, r.dump_n])).toEqual([
      [0, 'console-ramoops-0', 0], [0, 'devcoredump-ramoops-0', 0], [0, 'dmesg-ramoops-0', 0],
      [1, 'console-ramoops-0', 1], [1, 'devcoredump-ramoops-0', 1], [1, 'dmesg-ramoops-0', 1],
    ]);
  });
});

describe('an identical device dump not marked saved (the device restored from a copy)', () => {
  const base = path.join(tmp, 'restored');
  let dev0Sha = '';

  beforeAll(() => {
    const root = path.join(tmp, 'restored-setup');
    ok(run('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '11']));
    ok(run('lkcd', root, ['config']));
    ok(run('machine', root, ['panic', 'restored device']));
    ok(run('lkcd', root, ['config']));
    const copy = path.join(tmp, 'vmdump-before-save');
    expect(spawnSync('cp', ['--sparse=always', deviceOf(root), copy]).status).toBe(0);
    expect(ok(run('lkcd', root, ['save']))).toMatch(/^lkcd save: saved dump 0 to /);
    dev0Sha = sha256File(path.join(dumpDirOf(root), '0', 'dump.0'));
    copyRoot(root, base);
    // The device as it was before the save: the same dump, no mark.
    expect(spawnSync('cp', ['--sparse=always', copy, deviceOf(base)]).status).toBe(0);
    expect(readMarkFacts(deviceOf(base))).toBeNull();
  });

  /** The state a finished save of the restored device must leave, whatever happened on the way. */
  function expectDumpOneSameAsZero(root: string, problems: string[], what: string): void {
    const entries = dumpLikeEntries(root);
    if (entries.join(',') !== '0,1') problems.push(`${what}: DUMPDIR holds ${entries.join(', ')}`);
    const rows = list(root);
    const got = JSON.stringify(rows.map((d) => [d.n, d.same_as, d.sha256 === dev0Sha]));
    if (got !== JSON.stringify([[0, null, true], [1, 0, true]])) problems.push(`${what}: the index lists ${got}`);
    const bounds = fs.readFileSync(path.join(dumpDirOf(root), 'bounds'), 'utf8');
    if (bounds !== '2\n') problems.push(`${what}: bounds ${JSON.stringify(bounds)}`);
    const mark = readMarkFacts(deviceOf(root));
    if (JSON.stringify(mark) !== JSON.stringify({ n: 1, state: 0, sha256: dev0Sha })) problems.push(`${what}: the device's mark is ${JSON.stringify(mark)}`);
  }

  let reference: Record<string, string> = {};

  it('is saved as dump 1, same_as 0, in lkcd save, show and list; a second save finds it saved', () => {
    const root = path.join(tmp, 'restored-once');
    copyRoot(base, root);
    const out = ok(run('lkcd', root, ['save'])).split('\n').filter((l) => l !== '');
    expect(out[0]).toMatch(new RegExp(`^lkcd save: saved dump 1 to ${path.join(dumpDirOf(root), '1')}: \\d+ pages, \\d+ bytes, complete; panic "restored device"$`));
    expect(out).toContain(`lkcd save: dump 1 is byte-identical to dump 0 (same sha256), but the dump on ${deviceOf(root)} was not marked saved: another crash, kept as a dump of its own`);
    expect(ok(run('lkcd', root, ['save']))).toBe(`lkcd save: the dump on ${deviceOf(root)} was already saved as 1\n`);
    const problems: string[] = [];
    expectDumpOneSameAsZero(root, problems, 'uninterrupted');
    expect(problems).toEqual([]);
    expect(sha256File(path.join(dumpDirOf(root), '1', 'dump.1'))).toBe(dev0Sha);
    expect(ok(run('lkcd', root, ['show', '1']))).toMatch(/^ +same as: dump 0: byte-identical/m);
    expect(ok(run('lkcd', root, ['show', '0']))).not.toMatch(/same as/);
    const shown = JSON.parse(ok(run('lkcd', root, ['show', '1', '--json']))) as { record: { same_as: number | null } };
    expect(shown.record.same_as).toBe(0);
    expect(ok(run('lkcd', root, ['list']))).toMatch(/^ {2}1 .*restored device {2}\(same as 0\)$/m);
    expect(ok(run('lkcd', root, ['verify', '1']))).toMatch(/^dump 1: \d+ pages verified/);
    // A reindex from the directories alone keeps both, and the link.
    ok(run('lkcd', root, ['reindex']));
    expect(list(root).map((d) => [d.n, d.same_as])).toEqual([[0, null], [1, 0]]);
    reference = Object.fromEntries(SAVED_FILES(1).map((f) => [f, sha256File(path.join(dumpDirOf(root), '1', f))]));
  });

  it('killed at each kill point of lkcd save, the rerun finishes the same dump 1: no third dump, no "saved as 0"', () => {
    expect(Object.keys(reference)).toHaveLength(4);
    const work = path.join(tmp, 'restored-kill');
    const problems: string[] = [];
    let completedAt = 0;
    for (let k = 1; k < 100 && !completedAt; k++) {
      copyRoot(base, work);
      const first = run('lkcd', work, ['save'], { LKCD_KILL_AT: String(k) });
      if (first.signal !== 'SIGKILL') {
        completedAt = k;
        if (first.status !== 0) problems.push(`k=${k}: neither completed nor killed: ${first.status} ${first.stderr}`);
      } else {
        const rerun = run('lkcd', work, ['save']);
        if (rerun.status !== 0 || rerun.stderr !== '') problems.push(`k=${k}: the rerun failed: ${rerun.status} ${rerun.stderr.trim()}`);
        if (!/^lkcd save: (saved dump 1 to |the dump on \S+ is dump 1; marked saved$)/m.test(rerun.stdout)) problems.push(`k=${k}: the rerun said ${rerun.stdout.trim()}`);
      }
      expectDumpOneSameAsZero(work, problems, `k=${k}`);
      for (const [f, sha] of Object.entries(reference)) {
        const file = path.join(dumpDirOf(work), '1', f);
        if (!fs.existsSync(file) || sha256File(file) !== sha) problems.push(`k=${k}: ${f} differs from the uninterrupted save's`);
      }
      const again = run('lkcd', work, ['save']);
      if (again.stdout !== `lkcd save: the dump on ${deviceOf(work)} was already saved as 1\n`) problems.push(`k=${k}: a last save said ${again.stdout.trim()}`);
    }
    expect(problems).toEqual([]);
    // Every kill point was tried: the save marks, copies, writes its files, renames, indexes, bumps bounds.
    expect(completedAt).toBeGreaterThan(6);
  });
});
