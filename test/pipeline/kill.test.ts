/**
 * Kill tests (DESIGN section 3: stage 2 "resumable if interrupted"; save
 * "only then marks the device dump as saved"). `lkcd config` doing the
 * writeout, and `lkcd save`, are killed with SIGKILL at their k-th kill
 * point (LKCD_KILL_AT=k, src/dump/faults.ts), for k = 1, 2, 3, ... until
 * the command completes without reaching k, then rerun without the
 * variable (in-process, through the function the command calls). The result must be byte-identical to an uninterrupted run of
 * the same scenario: the device's bytes from the dump header to the end of
 * the dump, dump.N, map.N, kerntypes.N, analysis.N and bounds (sha256);
 * the index must hold the dump exactly once (`lkcd list --json`, minus
 * saved_at) and nothing may be left that looks like a dump or a lock.
 *
 * One 32M machine. Every kill point of `lkcd save` is tried; `lkcd config`
 * passes a kill point per MiB written, so k = 1..12 and then every 5th.
 * A writeout cut short by a failing device (LKCD_FAULT_DEVICE_EIO_FROM)
 * and retried must end in the same bytes too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot } from '../../src/machine/index.js';
import { BlockDevice, DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM, readSavedMark } from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { lkcdSave } from '../../lkcd/save.js';
import {
  copyRoot, deviceDump, deviceOf, dumpDirOf, dumpLikeEntries, ensureBuilt, listJson, ok, panicWithTruth,
  powerOnScenario, run, SAVE_LOCK_NAME, SAVED_FILES, sha256File, type Scenario,
} from '../helpers/lkcd.js';

const MiB = 1n << 20n;
const SCENARIO: Scenario = { mem: 32n * MiB, profile: 'database', seed: 21, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
const MESSAGE = 'kill test panic';
/** Exit status of a writeout cut short by the device (src/cli/exit.ts). */
const DEVICE_IO = 5;
/** `lkcd config`: every kill point up to here, then every CONFIG_STRIDE-th. */
const CONFIG_ALL_UP_TO = 12;
const CONFIG_STRIDE = 5;
/** No command has this many kill points on a 32M machine: a loop that gets here never completed. */
const K_LIMIT = 400;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-kill-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Roots: right after the panic (dump in RAM awaiting writeout), and right after an uninterrupted writeout. */
const afterPanic = path.join(tmp, 'after-panic');
const afterWriteout = path.join(tmp, 'after-writeout');
const work = path.join(tmp, 'work');

interface Final {
  deviceSha256: string;
  deviceEnd: bigint;
  files: Record<string, string>;
  bounds: string;
  list: Array<Record<string, unknown>>;
}

/** The saved files' sha256 and bounds of dump 0 in a root. */
function savedFiles(root: string): { files: Record<string, string>; bounds: string } {
  const dir = path.join(dumpDirOf(root), '0');
  return {
    files: Object.fromEntries(SAVED_FILES(0).map((f) => [f, fs.existsSync(path.join(dir, f)) ? sha256File(path.join(dir, f)) : 'absent'])),
    bounds: fs.readFileSync(path.join(dumpDirOf(root), 'bounds'), 'utf8'),
  };
}

let reference: Final;

beforeAll(() => {
  ensureBuilt();
  powerOnScenario(afterPanic, SCENARIO);
  lkcdConfig(new MachineRoot(afterPanic));
  const { out } = panicWithTruth(afterPanic, MESSAGE);
  expect(out.after).toBe('kexec');

  // The uninterrupted run, from the same restore point, with the same binaries.
  const ref = path.join(tmp, 'reference');
  copyRoot(afterPanic, ref);
  expect(ok(run('lkcd', ref, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
  copyRoot(ref, afterWriteout);
  const dev = deviceDump(deviceOf(ref))!;
  expect(ok(run('lkcd', ref, ['save']))).toMatch(/^lkcd save: saved dump 0 to /m);
  reference = { deviceSha256: dev.sha256, deviceEnd: dev.found.end, ...savedFiles(ref), list: listJson(ref) };
  expect(reference.list).toHaveLength(1);
  expect(indexRows(ref)).toEqual(reference.list);
});

/**
 * Runs `lkcd cmd` (the built CLI) killed at its k-th kill point; if it was
 * killed, reruns the same step in-process without LKCD_KILL_AT (the
 * library function the command calls), and returns the rerun's lines.
 */
function killThenRerun(cmd: 'config' | 'save', k: number, problems: string[]): { killed: boolean; rerun: string[] | null } {
  const first = run('lkcd', work, [cmd], { LKCD_KILL_AT: String(k) });
  const killed = first.signal === 'SIGKILL';
  if (!killed && (first.status !== 0 || first.stderr !== '')) problems.push(`k=${k}: lkcd ${cmd} neither completed nor was killed: status ${first.status}, ${first.stderr.trim()}`);
  if (!killed) return { killed, rerun: null };
  try {
    const root = new MachineRoot(work);
    return { killed, rerun: cmd === 'config' ? lkcdConfig(root).lines : lkcdSave(root).lines };
  } catch (e) {
    problems.push(`k=${k}: the rerun of lkcd ${cmd} failed: ${(e as Error).message}`);
    return { killed, rerun: null };
  }
}

/** The index's rows as `lkcd list --json` shows them (saved_at left out, the root as <root>), read in-process. */
function indexRows(root: string): Array<Record<string, unknown>> {
  const index = DumpIndex.open(dumpDirOf(root), { readonly: true });
  try {
    return index.listDumps().map(({ saved_at: _t, ...rest }) => ({ ...rest, dir: rest.dir.split(root).join('<root>') }));
  } finally {
    index.close();
  }
}

describe('lkcd config (the stage 2 writeout) killed at each kill point, then rerun', () => {
  it('leaves the device dump byte-identical to an uninterrupted writeout, and the machine re-armed', () => {
    const problems: string[] = [];
    const tried: number[] = [];
    let completedAt: number | null = null;
    for (let k = 1; k < K_LIMIT; k = k < CONFIG_ALL_UP_TO ? k + 1 : k + CONFIG_STRIDE) {
      copyRoot(afterPanic, work);
      tried.push(k);
      const { killed, rerun } = killThenRerun('config', k, problems);
      if (rerun && !rerun.some((l) => /^dump: (re)?configured: /.test(l))) problems.push(`k=${k}: the rerun did not re-arm the dump: ${rerun.join(' | ')}`);
      const dev = deviceDump(deviceOf(work));
      if (!dev) problems.push(`k=${k}: no dump on the device after the rerun`);
      else {
        if (dev.found.end !== reference.deviceEnd) problems.push(`k=${k}: the device dump ends at ${dev.found.end}, uninterrupted ${reference.deviceEnd}`);
        if (dev.sha256 !== reference.deviceSha256) problems.push(`k=${k}: device bytes from the header to the end differ from the uninterrupted writeout`);
      }
      if (!killed) { completedAt = k; break; }
    }
    expect(problems).toEqual([]);
    expect(completedAt, `tried k = ${tried.join(',')}`).not.toBeNull();
    expect(tried.length).toBeGreaterThan(CONFIG_ALL_UP_TO);
  });

  it('after a device failing part-way (a TRUNCATED dump, frames kept), a retry writes the same bytes as an uninterrupted writeout', () => {
    copyRoot(afterPanic, work);
    const failFrom = 3 * Number(MiB);
    // The writeout cut short by the device exits DEVICE_IO (5) after its output, with one line saying so.
    const cutShort = run('lkcd', work, ['config'], { LKCD_FAULT_DEVICE_EIO_FROM: String(failFrom) });
    expect(cutShort.status).toBe(DEVICE_IO);
    expect(cutShort.stderr).toMatch(/^lkcd: the dump device \S+ failed during the writeout: the dump on it is TRUNCATED \(\d+ pages missing\); the rest stays in memory for a retry\n$/);
    const first = cutShort.stdout;
    expect(first).toMatch(/TRUNCATED/);
    expect(first).toMatch(/frames stay reserved in memory/);
    const cut = deviceDump(deviceOf(work));
    expect(cut?.found.truncated).toBe(true);
    expect(Number(cut!.found.end)).toBeLessThanOrEqual(failFrom);
    expect(ok(run('lkcd', work, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
    const dev = deviceDump(deviceOf(work));
    expect(dev?.found.truncated).toBe(false);
    expect(dev?.sha256).toBe(reference.deviceSha256);
  });
});

describe('lkcd save killed at each kill point, then rerun', () => {
  it('leaves dump.N, map.N, kerntypes.N, analysis.N and bounds byte-identical, the dump indexed once, nothing stray', () => {
    const problems: string[] = [];
    const tried: number[] = [];
    let completedAt: number | null = null;
    for (let k = 1; k < K_LIMIT; k++) {
      copyRoot(afterWriteout, work);
      tried.push(k);
      const { killed } = killThenRerun('save', k, problems);
      const got = savedFiles(work);
      for (const [f, sha] of Object.entries(reference.files)) {
        if (got.files[f] !== sha) problems.push(`k=${k}: ${f} ${got.files[f] === 'absent' ? 'is missing' : 'differs from the uninterrupted save'}`);
      }
      if (got.bounds !== reference.bounds) problems.push(`k=${k}: bounds '${got.bounds.trim()}', uninterrupted '${reference.bounds.trim()}'`);
      const list = indexRows(work);
      if (JSON.stringify(list) !== JSON.stringify(reference.list)) problems.push(`k=${k}: the index differs: ${JSON.stringify(list.map((d) => [d.n, d.sha256]))}`);
      const entries = dumpLikeEntries(work);
      if (entries.join(',') !== '0') problems.push(`k=${k}: DUMPDIR holds ${entries.join(', ')}, expected only 0`);
      if (fs.existsSync(path.join(dumpDirOf(work), SAVE_LOCK_NAME))) problems.push(`k=${k}: the save lock is left behind`);
      const dev = deviceDump(deviceOf(work));
      if (dev?.sha256 !== reference.deviceSha256) problems.push(`k=${k}: the device dump changed`);
      const d = BlockDevice.open(deviceOf(work));
      try {
        const mark = readSavedMark(d);
        if (mark?.n !== 0 || mark.sha256 !== reference.list[0].sha256) problems.push(`k=${k}: the device dump is not marked saved as 0: ${JSON.stringify(mark)}`);
      } finally {
        d.close();
      }
      if (!killed) { completedAt = k; break; }
    }
    expect(problems).toEqual([]);
    expect(completedAt, `tried k = ${tried.join(',')}`).not.toBeNull();
    expect(completedAt!).toBeGreaterThan(1);
    // The last k: as `lkcd list --json` prints it.
    expect(listJson(work)).toEqual(reference.list);
  });

  it('lkcd save run again after a completed save finds the dump already saved and writes nothing', () => {
    copyRoot(afterWriteout, work);
    ok(run('lkcd', work, ['save']));
    const before = savedFiles(work);
    expect(ok(run('lkcd', work, ['save']))).toMatch(/already saved as 0/);
    expect(savedFiles(work)).toEqual(before);
    expect(dumpLikeEntries(work)).toEqual(['0']);
  });
});

describe('the scenario is reproducible', () => {
  it('a fresh power-on with the same seed, run in-process without interruption, saves the same bytes', () => {
    const fresh = path.join(tmp, 'fresh');
    powerOnScenario(fresh, SCENARIO);
    const root = new MachineRoot(fresh);
    lkcdConfig(root);
    panicWithTruth(fresh, MESSAGE);
    lkcdConfig(root);
    expect(lkcdSave(root).n).toBe(0);
    expect(deviceDump(deviceOf(fresh))?.sha256).toBe(reference.deviceSha256);
    expect(savedFiles(fresh)).toEqual({ files: reference.files, bounds: reference.bounds });
  });
});
