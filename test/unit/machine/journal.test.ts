/**
 * The undo journal (src/machine/journal.ts): every machine command is one
 * atomic step. A child process runs a scripted step on a small machine
 * root (8 MiB RAM image and state.json) with the built code and kills
 * itself with SIGKILL just before its K-th file-changing system call
 * (test/helpers/step_child.mjs), for K spread over the whole step. The next
 * process to take the machine (here: lockMachine, as every command does)
 * must leave RAM and state.json byte-identical to before the step, or, once
 * the step passed its commit point, to after it: never a mix, never a
 * leftover journal, moved-aside image or lock; in place, or in a copy of
 * the root made after the kill. The truths are the sha256 of
 * the files before the step and after an uninterrupted run of it.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, lockMachine, readMachineLock, writeState } from '../../../src/machine/index.js';
import { closeSystem, powerOn } from '../../../src/kernel/index.js';
import { ensureBuilt, REPO } from '../../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../../helpers/machine.js';

const MiB = 1 << 20;
const CHILD = path.join(REPO, 'test', 'helpers', 'step_child.mjs');
/** Kills tried per scenario at most (spread evenly, plus the last few calls around the commit). */
const MAX_KILLS = 26;

let tmp: string;
beforeAll(() => { ensureBuilt(); tmp = makeTempDir('journal'); });
afterAll(() => removeTempDir(tmp));

/** A machine root with an 8 MiB RAM of varied content (some zero pages) and a state.json, or an empty one. */
function makeRoot(dir: string, withMachine: boolean): void {
  fs.rmSync(dir, { recursive: true, force: true });
  const root = new MachineRoot(dir);
  root.prepare();
  if (!withMachine) return;
  const ram = Buffer.alloc(8 * MiB);
  for (let p = 0; p < ram.length / 4096; p++) {
    if (p % 5 === 0) continue; // a zero page
    const h = crypto.createHash('sha256').update(`page ${p}`).digest();
    for (let i = 0; i < 4096; i += 32) h.copy(ram, p * 4096 + i);
  }
  fs.writeFileSync(root.ramPath, ram, { mode: 0o600 });
  writeState(root, { version: 1, power: 'on', ram_bytes: BigInt(8 * MiB), cpu: { cr3: 0x1000n, kernel_base: 0x1000000n } });
}

const hashOf = (file: string): string => (fs.existsSync(file) ? crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex') : 'absent');

interface Snap { ram: string; state: string; rtc: string }
function snap(dir: string): Snap {
  const root = new MachineRoot(dir);
  return { ram: hashOf(root.ramPath), state: hashOf(root.statePath), rtc: hashOf(path.join(root.machineDir, 'rtc')) };
}

function runChild(dir: string, scenario: string, k: number): { signal: string | null; status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CHILD, dir, scenario, String(k)], { encoding: 'utf8', timeout: 60_000 });
  return { signal: r.signal, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The K to try: spread over 1..calls, always including the last few (the commit). */
function killPoints(calls: number): number[] {
  const ks = new Set<number>();
  const stride = Math.max(1, Math.ceil(calls / (MAX_KILLS - 6)));
  for (let k = 1; k <= calls; k += stride) ks.add(k);
  for (let k = Math.max(1, calls - 5); k <= calls; k++) ks.add(k);
  return [...ks].sort((a, b) => a - b);
}

/**
 * Runs `scenario` killed at each K from a fresh copy of the setup, recovers
 * with lockMachine, and classifies the result against the truths. Returns
 * the outcome per K ('before', 'after', or the problem).
 */
function sweep(scenario: string, withMachine: boolean | ((dir: string) => void), truths: Record<string, Snap>): Map<number, string> {
  const base = path.join(tmp, `${scenario}-base`);
  if (typeof withMachine === 'function') {
    fs.rmSync(base, { recursive: true, force: true });
    withMachine(base);
  } else {
    makeRoot(base, withMachine);
  }
  const work = path.join(tmp, `${scenario}-work`);
  const copy = (): void => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.cpSync(base, work, { recursive: true });
  };
  copy();
  const clean = runChild(work, scenario, 0);
  expect(clean.stderr).toBe('');
  expect(clean.status).toBe(0);
  const calls = Number(/calls (\d+)/.exec(clean.stdout)![1]);
  const all: Record<string, Snap> = { before: snap(base), after: snap(work), ...truths };
  const outcome = new Map<number, string>();
  for (const k of killPoints(calls)) {
    copy();
    const r = runChild(work, scenario, k);
    if (r.signal !== 'SIGKILL') { outcome.set(k, `not killed (status ${r.status}, ${r.stderr.trim()})`); continue; }
    // Every other kill, the root is copied first (new inodes, as `cp -a` of a machine left by a kill makes).
    const at = k % 2 === 0 ? `${work}-copied` : work;
    if (at !== work) {
      fs.rmSync(at, { recursive: true, force: true });
      fs.cpSync(work, at, { recursive: true });
    }
    const root = new MachineRoot(at);
    const lock = lockMachine(root, 'journal.test recovery');
    lock.release();
    const got = snap(at);
    const name = Object.entries(all).find(([, s]) => s.ram === got.ram && s.state === got.state && s.rtc === got.rtc)?.[0];
    const left = ['ram.journal', 'ram.replaced', 'lock'].filter((f) => fs.existsSync(path.join(root.machineDir, f)));
    outcome.set(k, left.length ? `left ${left.join(', ')}` : name ?? `a mix: ram ${got.ram.slice(0, 8)}, state ${got.state.slice(0, 8)}, rtc ${got.rtc.slice(0, 8)}`);
  }
  return outcome;
}

/** The outcomes in order must run before..., then [middle...], then after...: each step all or nothing. */
function expectAtomic(outcome: Map<number, string>, order: string[]): void {
  const seq = [...outcome.entries()];
  const bad = seq.filter(([, o]) => !order.includes(o));
  expect(bad, `kills that did not end in one of ${order.join(', ')}`).toEqual([]);
  for (let i = 1; i < seq.length; i++) {
    expect(order.indexOf(seq[i][1]), `K=${seq[i][0]} ended '${seq[i][1]}' after K=${seq[i - 1][0]} ended '${seq[i - 1][1]}'`).toBeGreaterThanOrEqual(order.indexOf(seq[i - 1][1]));
  }
  expect(seq[0][1]).toBe(order[0]);
  expect(seq.some(([, o]) => o === 'before')).toBe(true);
}

describe('a step killed at any system call rolls back to before it, or is complete', () => {
  it('changes to an open RAM image (cached, evicted and whole-chunk writes) and state.json', () => {
    const out = sweep('open', true, {});
    expectAtomic(out, ['before', 'after']);
    expect([...out.values()].filter((o) => o === 'before').length).toBeGreaterThan(10);
  });

  it('a cold power-on that replaces the RAM image: the old image and state come back', () => {
    expectAtomic(sweep('replace', true, {}), ['before', 'after']);
  });

  it('the first power-on of a root: rolled back, neither a RAM image nor a state.json is left', () => {
    const out = sweep('replace', false, {});
    expectAtomic(out, ['before', 'after']);
    const base = snap(path.join(tmp, 'replace-base'));
    expect(base).toEqual({ ram: 'absent', state: 'absent', rtc: 'absent' });
  });

  it('a crash that changes RAM, lets it go and cold-boots a new image, all in one step', () => {
    expectAtomic(sweep('cold-reboot', true, {}), ['before', 'after']);
  });

  it('a long command with a commit point: a kill after it keeps the first part', () => {
    // The truth of the middle: a run of only the first part, from the same setup.
    const mid = path.join(tmp, 'first-part');
    makeRoot(mid, true);
    const r = runChild(mid, 'open', 0);
    expect(r.status).toBe(0);
    const first = path.join(tmp, 'two-steps-mid');
    makeRoot(first, true);
    const firstOnly = spawnSync(process.execPath, ['-e', `
      const m = await import(${JSON.stringify(path.join(REPO, 'dist', 'src', 'machine', 'index.js'))});
      const root = new m.MachineRoot(${JSON.stringify(first)});
      const ram = m.PhysicalRam.open(root.ramPath, ${8 * MiB}n, { maxChunks: 4 });
      for (let i = 0; i < 40; i++) ram.write(BigInt(((i * 7919 + 6 * 104729) % (${8 * MiB} - 64)) & ~7), Buffer.alloc(48, (i + 6) & 0xff));
      ram.write(${2 * MiB}n, Buffer.alloc(256 << 10, 0xa6));
      ram.write(${5 * MiB + 4096}n, Buffer.alloc(3 * 4096, 0x5a));
      m.writeState(root, { version: 1, power: 'on', ram_bytes: ${8 * MiB}n, cpu: { cr3: 0x5000n, kernel_base: 0x1000000n } });
      ram.close();
    `], { encoding: 'utf8', input: '' });
    expect(firstOnly.stderr).toBe('');
    const out = sweep('two-steps', true, { middle: snap(first) });
    expectAtomic(out, ['before', 'middle', 'after']);
    expect([...out.values()]).toContain('middle');
  });

  it('a command under the machine lock: the next one takes the dead holder\'s lock over and rolls back', () => {
    expectAtomic(sweep('locked', true, {}), ['before', 'after']);
  });

  it('a cold reset of a running 16M machine: the RTC goes back with RAM and state.json, or on with them', () => {
    const out = sweep('reset', (dir) => closeSystem(powerOn(new MachineRoot(dir), { mem: 16n * BigInt(MiB), profile: 'idle', seed: 9 })), {});
    expectAtomic(out, ['before', 'after']);
    expect([...out.values()]).toContain('after');
    // The reset moves the RTC on: before and after differ in it, so a kill that left RAM and the RTC
    // of different sides would have matched neither.
    const once = path.join(tmp, 'reset-once');
    fs.rmSync(once, { recursive: true, force: true });
    fs.cpSync(path.join(tmp, 'reset-base'), once, { recursive: true });
    expect(runChild(once, 'reset', 0).status).toBe(0);
    const [before, after] = [snap(path.join(tmp, 'reset-base')), snap(once)];
    expect(before.rtc).not.toBe('absent');
    expect(after.rtc).not.toBe(before.rtc);
    expect(after.ram).not.toBe(before.ram);
  });
});

describe('the machine lock', () => {
  it('is reentrant in a process, refuses another live process with BUSY naming it, and is released by its taker', () => {
    const dir = path.join(tmp, 'lock');
    makeRoot(dir, true);
    const root = new MachineRoot(dir);
    const outer = lockMachine(root, 'test outer');
    const inner = lockMachine(root, 'test inner');
    expect(outer.outer).toBe(true);
    expect(inner.outer).toBe(false);
    inner.release();
    expect(readMachineLock(root)?.command).toBe('test outer');
    // Another process while we hold it.
    const other = spawnSync(process.execPath, ['-e', `
      const m = await import(${JSON.stringify(path.join(REPO, 'dist', 'src', 'machine', 'index.js'))});
      try { m.lockMachine(new m.MachineRoot(${JSON.stringify(dir)}), 'second'); console.log('got it'); }
      catch (e) { console.log(e.code + ' ' + e.message); }
    `], { encoding: 'utf8', input: '' });
    expect(other.stdout).toMatch(new RegExp(`^BUSY the machine at ${dir} is busy: pid ${process.pid} is running 'test outer'`));
    outer.release();
    expect(readMachineLock(root)).toBeNull();
  });

  it('a lock whose holder is gone is taken over; a pid reused by another process does not keep it', () => {
    const dir = path.join(tmp, 'stale');
    makeRoot(dir, true);
    const root = new MachineRoot(dir);
    // A holder that no longer exists, and one whose pid is alive (ours) but started at another time.
    for (const text of ['pid 999999\nstart 1\ncommand gone\n', `pid ${process.pid}\nstart 1\ncommand reused pid\n`]) {
      fs.writeFileSync(path.join(root.machineDir, 'lock'), text);
      const hold = lockMachine(root, 'taker');
      expect(hold.outer).toBe(true);
      expect(readMachineLock(root)?.command).toBe('taker');
      hold.release();
    }
  });
});
