/**
 * Shared steps of the save, index, kill, CLI and interop tests: the built
 * CLIs in child processes (exit status, stdout, stderr, the signal that
 * ended them), the soft-boot pipeline run in-process up to `lkcd save`
 * with RAM just before the panic kept as ground truth, a check of a saved
 * dump.N against that truth (DESIGN section 5 invariant 1), and the state
 * of DUMPDIR and the dump device a failed command must leave alone.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { MachineRoot, PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import { closeSystem, countPageTypes, MemMap, openSystem, powerOn, systemDmesg, type PageCounts } from '../../src/kernel/index.js';
import {
  BlockDevice, crashMachine, dump_page, DUMP_DH_END, dumpLevelMask, findDeviceDump, openLkcdFile, readDumpConfig, type CrashOutcome, type DeviceDump, type DumpCompress,
} from '../../src/dump/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { lkcdSave, sha256File } from '../../lkcd/save.js';
import { defaultSysconfig } from '../../lkcd/sysconfig.js';
import { hashOf, pageHash } from './ramdiff.js';
import { hexs, pa, takeSnapshot, type Snapshot } from './softboot.js';

import { BIN, REPO } from './cli.js';
export { BIN, REPO };
export type Tool = keyof typeof BIN;

/** sysexits.h statuses the CLIs use. */
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;

/** Where the paths of etc/sysconfig/dump point, inside a machine root (the default file's values). */
export const DUMPDIR_IN_ROOT = path.join('log', 'dump');
export const DUMPDEV_IN_ROOT = path.join('dev', 'vmdump');
export const SYSCONFIG_IN_ROOT = path.join('etc', 'sysconfig', 'dump');
export const INDEX_FILE_NAME = 'lkcd-index.sqlite';
export const SAVE_LOCK_NAME = '.lkcd-save.lock';
/** The files `lkcd save` writes into DUMPDIR/N, by N. */
export const SAVED_FILES = (n: number): string[] => [`dump.${n}`, `map.${n}`, `kerntypes.${n}`, `analysis.${n}`];

export interface RunResult { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, LKCD_NO_PROGRESS: '1', ...extra };
}

/** Runs a built CLI with --root and no LKCD_* variables from the caller's environment except `env`. */
export function run(tool: Tool, root: string, args: readonly string[], env: Record<string, string> = {}): RunResult {
  const r = spawnSync(process.execPath, [BIN[tool], '--root', root, ...args], {
    cwd: REPO, env: childEnv(env), encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without waiting: for two commands at once. */
export function runAsync(tool: Tool, root: string, args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN[tool], '--root', root, ...args], { cwd: REPO, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** Asserts exit 0 with nothing on stderr; returns stdout. */
export function ok(r: RunResult): string {
  expect(r.stderr, `stdout: ${r.stdout}`).toBe('');
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  return r.stdout;
}

/**
 * Asserts a clean failure: a non-zero status (exactly `status` when given),
 * one stderr line starting "<tool>: ", no stack or uncaught-exception
 * trace, and every `names` substring in that line. Returns the line.
 */
export function cleanFailure(r: RunResult, tool: Tool, status: number | null, ...names: string[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, `stderr was:\n${r.stderr}\nstdout was:\n${r.stdout}`).toHaveLength(1);
  const line = lines[0];
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/^(\w+)?Error: /m);
  expect(r.stderr).not.toMatch(/^node:internal/m);
  expect(line).not.toContain('internal error');
  expect(line.startsWith(`${tool}: `), line).toBe(true);
  for (const n of names) expect(line).toContain(n);
  expect(r.signal).toBeNull();
  if (status === null) expect(r.status, `stderr: ${line}`).not.toBe(0);
  else expect(r.status, `stderr: ${line}`).toBe(status);
  return line;
}

export { ensureBuilt } from './cli.js';

export const sha256 = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

export { sha256File };

/** Copies a machine root (RAM, device, DUMPDIR) keeping holes: a restore point. */
export function copyRoot(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  const r = spawnSync('cp', ['-a', '--sparse=always', from, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr}`);
}

export const dumpDirOf = (root: string): string => path.join(root, DUMPDIR_IN_ROOT);
export const deviceOf = (root: string): string => path.join(root, DUMPDEV_IN_ROOT);
export const sysconfigOf = (root: string): string => path.join(root, SYSCONFIG_IN_ROOT);

/** Writes etc/sysconfig/dump: the default file for `release` with `values` replacing its assignments. */
export function writeSysconfig(root: string, release: string, values: Record<string, string | number>): void {
  let text = defaultSysconfig(release);
  for (const [k, v] of Object.entries(values)) {
    const re = new RegExp(`^${k}=.*$`, 'm');
    if (!re.test(text)) throw new Error(`the default sysconfig has no ${k}`);
    text = text.replace(re, `${k}=${v}`);
  }
  const file = sysconfigOf(root);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o600 });
}

/** Replaces one assignment of an existing etc/sysconfig/dump. */
export function setSysconfig(root: string, key: string, value: string): void {
  const file = sysconfigOf(root);
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp(`^${key}=.*$`, 'm');
  if (!re.test(text)) throw new Error(`${file} has no ${key}`);
  fs.writeFileSync(file, text.replace(re, `${key}=${value}`));
}

/** The dump on a device (null when there is none) and the sha256 of its bytes from the header to its end. */
export function deviceDump(device: string): { found: DeviceDump; sha256: string; bytes: Buffer } | null {
  const dev = BlockDevice.open(device);
  try {
    const found = findDeviceDump(dev);
    if (!found) return null;
    const bytes = dev.read(found.start, Number(found.end - found.start));
    return { found, sha256: sha256(bytes), bytes };
  } finally {
    dev.close();
  }
}

/** What a failed command must not change: DUMPDIR's entries, bounds, the index rows, the device bytes. */
export interface DumpDirState {
  entries: string[];
  bounds: string | null;
  deviceSha256: string | null;
  indexSha256: string | null;
}

export function dumpDirState(root: string): DumpDirState {
  const dir = dumpDirOf(root);
  const read = (f: string): string | null => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : null);
  const index = path.join(dir, INDEX_FILE_NAME);
  return {
    entries: fs.existsSync(dir) ? fs.readdirSync(dir).filter((e) => !e.startsWith(INDEX_FILE_NAME)).sort() : [],
    bounds: read(path.join(dir, 'bounds')),
    deviceSha256: fs.existsSync(deviceOf(root)) ? sha256File(deviceOf(root)) : null,
    indexSha256: fs.existsSync(index) ? sha256File(index) : null,
  };
}

/** Directories in DUMPDIR that are, or could be taken for, a dump: N, and any in-progress .saving-N. */
export function dumpLikeEntries(root: string): string[] {
  const dir = dumpDirOf(root);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((e) => /^\d+$/.test(e) || e.startsWith('.saving')).sort();
}

/**
 * `lkcd list --json` with saved_at (the wall-clock time of the save) left
 * out and the root in `dir` written as <root>, so that two roots compare.
 */
export function listJson(root: string): Array<Record<string, unknown>> {
  const out = ok(run('lkcd', root, ['list', '--json']));
  return (JSON.parse(out) as Array<Record<string, unknown>>).map(({ saved_at: _t, ...rest }) =>
    ({ ...rest, dir: typeof rest.dir === 'string' ? rest.dir.split(root).join('<root>') : rest.dir }));
}

export interface Scenario {
  mem: bigint;
  profile: string;
  seed: number;
  /** DUMP_LEVEL of etc/sysconfig/dump: 2 KERN, 4 USED, 8 ALL_RAM. */
  level: number;
  compress: DumpCompress;
}

/** RAM at the crash, as the dump must show it. */
export interface Truth {
  snap: Snapshot;
  /** mem_map's page counts by type just before the panic. */
  counts: PageCounts;
  /** Full bytes of the frames asked for in `keep`. */
  pages: Map<bigint, Buffer>;
  /** The kernel log in RAM, as `machine dmesg` prints it. */
  dmesg: string;
}

/** Powers on a machine in `dir` and writes its etc/sysconfig/dump for the scenario. Returns the release. */
export function powerOnScenario(dir: string, s: Scenario): string {
  const sys = powerOn(new MachineRoot(dir), { mem: s.mem, profile: s.profile, seed: s.seed });
  const release = sys.kernel.release;
  closeSystem(sys);
  writeSysconfig(dir, release, { DUMP_LEVEL: s.level, DUMP_COMPRESS: s.compress });
  return release;
}

/**
 * Panics the machine in `dir` in-process (as `machine panic` does),
 * taking the ground truth at the beforeDump hook: frame hashes, page types,
 * and the full bytes of the frames `keep` picks (from the snapshot).
 */
export function panicWithTruth(dir: string, message: string, keep: (snap: Snapshot) => bigint[] = () => []): { truth: Truth; out: Omit<CrashOutcome, 'system'> } {
  const sys = openSystem(new MachineRoot(dir));
  let truth!: Truth;
  let out: CrashOutcome;
  try {
    out = crashMachine(sys, { kind: 'panic', message }, {
      beforeDump: (x) => {
        const blockPhys = pa(readDumpConfig(x.kernel).dump_addr);
        const snap = takeSnapshot(x, blockPhys);
        const pages = new Map(keep(snap).map((pfn) => [pfn, x.ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE)] as [bigint, Buffer]));
        truth = { snap, counts: countPageTypes(new MemMap(x.kernel)), pages, dmesg: systemDmesg(x) };
      },
    });
  } catch (e) {
    closeSystem(sys);
    throw e;
  }
  closeSystem(out.system);
  const { system: _s, ...rest } = out;
  return { truth, out: rest };
}

export interface SavedScenario { dir: string; release: string; truth: Truth; n: number; configLines: string[]; saveLines: string[] }

/**
 * The whole pipeline in-process: power-on, `lkcd config` (arm and preload),
 * panic with ground truth, `lkcd config` (stage 2 writeout), `lkcd save`.
 */
export function runPipeline(dir: string, s: Scenario, message: string, keep?: (snap: Snapshot) => bigint[]): SavedScenario {
  const release = powerOnScenario(dir, s);
  const root = new MachineRoot(dir);
  lkcdConfig(root);
  const { truth, out } = panicWithTruth(dir, message, keep);
  expect(out.after, out.console.join('\n')).toBe('kexec');
  const configLines = lkcdConfig(root).lines;
  const saved = lkcdSave(root);
  expect(saved.n, saved.lines.join('\n')).not.toBeNull();
  return { dir, release, truth, n: saved.n!, configLines, saveLines: saved.lines };
}

/**
 * Invariant 1 on a saved dump.N: every page equals its frame just before
 * the panic; the pages are exactly those the configured dump level
 * (DUMP_LEVEL, made a cumulative mask) selects, less the ranges the dump
 * lists missing, and those only when it says TRUNCATED; no pfn twice.
 * Returns the violations, empty when it holds.
 */
export function checkAgainstTruth(file: string, snap: Snapshot, dumpLevel: number): string[] {
  const bad: string[] = [];
  const dump = openLkcdFile(file);
  try {
    const level = dumpLevelMask(dumpLevel);
    if ((dump.header.dh_dump_level & ~level) !== 0) bad.push(`dh_dump_level ${hexs(BigInt(dump.header.dh_dump_level))} has passes DUMP_LEVEL ${dumpLevel} does not select`);
    const missing = dump.missingRanges();
    const isMissing = (pfn: bigint): boolean => missing.some(([a, b]) => pfn >= a && pfn < b);
    const saved = new Set<bigint>();
    for (const pfn of dump.pages()) {
      if (saved.has(pfn)) bad.push(`pfn ${hexs(pfn)} saved twice`);
      saved.add(pfn);
      if (pfn >= snap.maxPfn) { bad.push(`pfn ${hexs(pfn)} is past the end of RAM`); continue; }
      if (!pageHash(dump.readPage(pfn)).equals(hashOf(snap.hashes, pfn))) bad.push(`page ${hexs(pfn)} differs from RAM before the panic`);
    }
    for (let p = 0n; p < snap.maxPfn; p++) {
      const m = snap.mask[Number(p)];
      const selected = m !== 0 && (m & level) !== 0;
      if (!selected && saved.has(p)) bad.push(`pfn ${hexs(p)} (${snap.types[Number(p)]}) is not selected by level ${hexs(BigInt(level))} but was saved`);
      if (selected && !saved.has(p) && !isMissing(p)) bad.push(`selected pfn ${hexs(p)} (${snap.types[Number(p)]}) is neither saved nor listed missing`);
      if (saved.has(p) && isMissing(p)) bad.push(`pfn ${hexs(p)} is saved and listed missing`);
    }
    if (missing.length > 0 && !dump.attrs['dump.truncated']) bad.push(`${missing.length} missing ranges in a dump not marked TRUNCATED`);
    if (dump.header.dh_num_pages !== saved.size) bad.push(`dh_num_pages ${dump.header.dh_num_pages}, ${saved.size} records`);
  } finally {
    dump.close();
  }
  return bad;
}

/** Record offsets of a device dump's page records, in file order (for cutting or patching one). */
export function recordOffsets(bytes: Buffer, dataOffset: bigint): Array<{ offset: number; pfn: bigint; size: number; flags: number }> {
  const out: Array<{ offset: number; pfn: bigint; size: number; flags: number }> = [];
  for (let off = Number(dataOffset); off + dump_page.size <= bytes.length;) {
    const address = bytes.readBigUInt64LE(off);
    const size = bytes.readUInt32LE(off + 8);
    const flags = bytes.readUInt32LE(off + 12);
    if (flags & DUMP_DH_END) break;
    out.push({ offset: off, pfn: address / PAGE_SIZE_N, size, flags });
    off += dump_page.size + size;
  }
  return out;
}

/** Mode bits of a path. */
export const modeOf = (p: string): number => fs.statSync(p).mode & 0o777;
