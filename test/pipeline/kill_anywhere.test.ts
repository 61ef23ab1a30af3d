/**
 * Kill anywhere (issue 8: a `machine panic` killed part-way, then the
 * normal flow, gave a dump marked complete with thousands of wrong pages,
 * or left every command failing). For small machines and several seeds,
 * `machine panic` (stage 1 and the kexec boot), `lkcd config` (the
 * writeout) and `lkcd save` are each killed with SIGKILL at a random
 * instant of their run (timed from the start of the process, not at kill
 * points), and the operator carries on: reruns the killed command (a
 * rerun may be killed again), or runs `lkcd save` before rerunning a
 * killed `lkcd config`. Then:
 *
 * - every command the operator ran after a kill succeeded (exit 0, nothing
 *   on stderr), and `machine status` works;
 * - exactly one dump is saved, byte-identical to the dump.0 of an
 *   uninterrupted run of the same machine, and every page of it equals
 *   RAM before the panic (truth: a twin of the machine panicked in-process
 *   with the beforeDump hook; the dump may be TRUNCATED only as the
 *   uninterrupted one is, with its missing pages listed);
 * - nothing is left of a step, a lock or a half-saved dump.
 *
 * How each kill ended is counted per command and printed (rolled back,
 * finished the commit, killed before it took the machine, or the command
 * had already finished).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM } from '../../src/dump/index.js';
import {
  checkAgainstTruth, copyRoot, dumpDirOf, dumpLikeEntries, ensureBuilt, ok, powerOnScenario, run, SAVE_LOCK_NAME, sha256File,
  type Scenario, type Truth,
} from '../helpers/lkcd.js';
import { machineLeftovers, runKilled, truthOfPanic, type TimedRun } from '../helpers/steps.js';

const MiB = 1n << 20n;
const MESSAGE = 'kill anywhere';
const TRIALS = 3;
const SEEDS: Array<[string, Scenario]> = [
  ['16M database seed 201', { mem: 16n * MiB, profile: 'database', seed: 201, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['24M database seed 202', { mem: 24n * MiB, profile: 'database', seed: 202, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['16M fileserver seed 203', { mem: 16n * MiB, profile: 'fileserver', seed: 203, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-killany-'));
beforeAll(() => ensureBuilt());
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  const lines = Object.entries(tally).map(([cmd, classes]) => `  ${cmd}: ${Object.entries(classes).map(([c, n]) => `${n} ${c}`).join(', ')}`);
  process.stdout.write(`kill anywhere: ${Object.values(tally).reduce((a, c) => a + Object.entries(c).filter(([k]) => k !== 'finished before the kill').reduce((x, [, n]) => x + n, 0), 0)} kills\n${lines.join('\n')}\n`);
});

/** How the kills of each command ended. */
const tally: Record<string, Record<string, number>> = {};
function count(cmd: string, how: string): void {
  tally[cmd] ??= {};
  tally[cmd][how] = (tally[cmd][how] ?? 0) + 1;
}

/** mulberry32: the trials' delays, fixed per seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Cmd = ['machine', string[]] | ['lkcd', string[]];
const PANIC: Cmd = ['machine', ['panic', MESSAGE]];
const CONFIG: Cmd = ['lkcd', ['config']];
const SAVE: Cmd = ['lkcd', ['save']];
const nameOf = (c: Cmd): string => `${c[0]} ${c[1][0]}`;

/**
 * How a kill ended, from what the next run of the machine said: whether it
 * rolled back a step the kill left unfinished (holdMachine's line), and
 * what the command then found to do.
 */
function classify(cmd: string, killed: TimedRun, next: TimedRun): string {
  if (killed.signal !== 'SIGKILL') return 'finished before the kill';
  const step = /rolled back the step .* that pid \d+ left unfinished/.test(next.stdout) ? 'step rolled back'
    : /finished the commit of the step/.test(next.stdout) ? 'step had committed' : 'no step open';
  let then = '';
  if (next.signal === 'SIGKILL') {
    then = 'its rerun killed too';
  } else if (cmd === 'lkcd config') {
    then = /\(resumed\)/.test(next.stdout) ? 'writeout resumed'
      : /^dump: wrote /m.test(next.stdout) ? 'writeout redone from the start' : 'writeout had finished, re-armed';
  } else if (cmd === 'lkcd save') {
    then = /saved dump 0 to/.test(next.stdout) ? 'saved by the rerun'
      : /already saved as 0/.test(next.stdout) ? 'had finished' : /is dump 0; marked saved/.test(next.stdout) ? 'indexed, marked saved by the rerun' : `other: ${next.stdout.trim()}`;
  } else {
    then = /saved dump reserved at/.test(next.stdout) && !/still awaits writeout/.test(next.stdout) ? 'panic redone' : 'panic had finished';
  }
  return `${step}, ${then}`;
}

describe.each(SEEDS)('kill anywhere: %s', (name, s) => {
  const base = path.join(tmp, name.replace(/\W+/g, '-'));
  let truth: Truth;
  let reference: { sha: string; ms: Record<string, number> };

  beforeAll(async () => {
    powerOnScenario(base, s);
    ok(run('lkcd', base, ['config']));
    truth = truthOfPanic(base, `${base}-twin`, MESSAGE);
    // The uninterrupted run: its dump.0 and how long each command takes here and now.
    const ref = `${base}-ref`;
    copyRoot(base, ref);
    const ms: Record<string, number> = {};
    for (const c of [PANIC, CONFIG, SAVE]) {
      const r = await runKilled(c[0], ref, c[1], null);
      ok(r);
      ms[nameOf(c)] = r.ms;
    }
    reference = { sha: sha256File(path.join(dumpDirOf(ref), '0', 'dump.0')), ms };
    expect(checkAgainstTruth(path.join(dumpDirOf(ref), '0', 'dump.0'), truth.snap, s.level)).toEqual([]);
    fs.rmSync(ref, { recursive: true, force: true });
  });

  it(`${TRIALS} trials, each command killed at a random instant, the operator carrying on`, async () => {
    const rand = prng(s.seed);
    const problems: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const work = `${base}-work`;
      copyRoot(base, work);
      const log: string[] = [];
      /** A kill came after the panic had finished: the rerun crashed the crash recovery kernel, a second panic. */
      let secondPanic = false;
      const expectOk = (what: string, r: TimedRun): void => {
        if (r.signal !== null || r.status !== 0 || r.stderr !== '') problems.push(`trial ${trial}: ${what} failed: status ${r.status} ${r.signal ?? ''} ${r.stderr.trim()} | ${log.join(' ; ')}`);
      };
      /** Runs `c` killed at a random instant of its uninterrupted run time; reruns it (maybe killed again) until it completes. */
      const killThenCarryOn = async (c: Cmd, before?: () => Promise<TimedRun>): Promise<void> => {
        let kills = rand() < 0.3 ? 2 : 1;
        let pending: TimedRun | null = null;
        let between = '';
        for (;;) {
          const delay = kills > 0 ? Math.round((0.15 + rand() * 0.9) * reference.ms[nameOf(c)]) : null;
          const r = await runKilled(c[0], work, c[1], delay);
          log.push(`${nameOf(c)}${delay === null ? '' : ` kill@${delay}ms`}: ${r.signal ?? r.status}`);
          if (pending) {
            const how = classify(nameOf(c), pending, { ...r, stdout: between + r.stdout });
            count(nameOf(c), how);
            if (c === PANIC && how.endsWith('panic had finished')) secondPanic = true;
          }
          between = '';
          if (r.signal !== 'SIGKILL') {
            if (kills === 0 || delay === null) { expectOk(nameOf(c), r); return; }
            // Finished before the kill came: that is the uninterrupted outcome.
            expectOk(nameOf(c), r);
            count(nameOf(c), 'finished before the kill');
            return;
          }
          pending = r;
          kills--;
          if (before) { between = (await before()).stdout; before = undefined; }
        }
      };
      await killThenCarryOn(PANIC);
      // After a killed writeout, an operator may try lkcd save before running lkcd config again.
      const saveFirst = rand() < 0.4;
      await killThenCarryOn(CONFIG, saveFirst ? async () => {
        const r = await runKilled('lkcd', work, ['save'], null);
        log.push(`lkcd save (before the rerun): ${r.status}`);
        // The dump is still held in memory (its writeout was killed): save says so in one warning line.
        expectOk('lkcd save after a killed lkcd config', { ...r, stderr: r.stderr.replace(/^lkcd: warning: a dump held in memory at 0x[0-9a-f]+ awaits writeout: lkcd save copies only the dump device; run lkcd config first, then lkcd save\n/, '') });
        if (!/^lkcd save: (no dump on |saved dump 0 to )/m.test(r.stdout)) problems.push(`trial ${trial}: lkcd save after a killed writeout said: ${r.stdout.trim()}`);
        return r;
      } : undefined);
      await killThenCarryOn(SAVE);
      // A last save, as the boot scripts run it: the dump is saved exactly once.
      const again = await runKilled('lkcd', work, ['save'], null);
      expectOk('the last lkcd save', again);

      const dumps = dumpLikeEntries(work);
      if (dumps.join(',') !== '0') problems.push(`trial ${trial}: DUMPDIR holds ${dumps.join(', ') || 'nothing'}, expected only 0 | ${log.join(' ; ')}`);
      const file = path.join(dumpDirOf(work), '0', 'dump.0');
      if (fs.existsSync(file)) {
        if (!secondPanic) {
          if (sha256File(file) !== reference.sha) problems.push(`trial ${trial}: dump.0 differs from the uninterrupted run's | ${log.join(' ; ')}`);
        } else {
          // The device dumps lived in the crash recovery kernel's memory, lost with it at the second panic;
          // the memory dump is held across it (its pages are checked against RAM below), with no device
          // dumps of the second crash attached to it.
          const devices = JSON.parse((await runKilled('lkcd', work, ['devices', '0', '--json'], null)).stdout) as unknown[];
          if (devices.length !== 0) problems.push(`trial ${trial}: after a second panic dump.0 carries ${devices.length} device dumps, expected none | ${log.join(' ; ')}`);
        }
        const bad = checkAgainstTruth(file, truth.snap, s.level);
        if (bad.length) problems.push(`trial ${trial}: ${bad.length} pages wrong against RAM before the panic, first: ${bad[0]} | ${log.join(' ; ')}`);
      }
      const left = [...machineLeftovers(work), ...(fs.existsSync(path.join(dumpDirOf(work), SAVE_LOCK_NAME)) ? [SAVE_LOCK_NAME] : [])];
      if (left.length) problems.push(`trial ${trial}: left behind: ${left.join(', ')}`);
      const st = await runKilled('machine', work, ['status'], null);
      expectOk('machine status at the end', st);
    }
    expect(problems).toEqual([]);
  });
});
