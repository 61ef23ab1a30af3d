/**
 * The `machine` CLI as a user runs it: the built binary in a child process.
 * Each failure case asserts the exit status from the sysexits table, exactly
 * one stderr line naming what was wrong, and no trace of an uncaught
 * exception: a crash is a test failure even when the exit status is non-zero.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MACHINE_JS = path.join(REPO, 'dist', 'src', 'cli', 'machine.js');
const SRC = path.join(REPO, 'src');

const EX_USAGE = 64;
const EX_DATAERR = 65;
const EX_NOINPUT = 66;
const EX_IOERR = 74;

const MiB = 1 << 20;
const PAGE_SIZE = 4096;
const COMMANDS = ['power-on', 'power-off', 'status', 'dmesg', 'ps', 'run', 'export-vmcore'] as const;
const PROFILES = ['idle', 'fileserver', 'database', 'random'] as const;

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI. The child gets no LKCD_* variables from the caller's
 * environment (so no test can reach the checkout's var/ by accident), then `env`.
 */
function runMachine(args: readonly string[], env: Record<string, string> = {}): RunResult {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') base[k] = v;
  const r = spawnSync(process.execPath, [MACHINE_JS, ...args], {
    cwd: REPO,
    env: { ...base, LKCD_NO_PROGRESS: '1', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The newest modification time of any .ts file under `dir`. */
function newestTs(dir: string): number {
  let newest = 0;
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    if (name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(path.join(dir, name)).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when machine.js is missing or older than some file under src/. */
function ensureBuilt(): void {
  const stale = !fs.existsSync(MACHINE_JS) || fs.statSync(MACHINE_JS).mtimeMs < newestTs(SRC);
  if (!stale) return;
  const r = spawnSync('npx', ['tsc', '-p', '.'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npx tsc -p . failed (status ${r.status}):\n${r.stdout}${r.stderr}`);
}

/**
 * Asserts a clean failure: the status, exactly one non-empty stderr line
 * starting "machine: ", no stack frames or Node's uncaught-error header,
 * and every `names` substring in that line. Returns the line.
 */
function expectCleanFailure(r: RunResult, status: number, ...names: string[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, `stderr was:\n${r.stderr}`).toHaveLength(1);
  const line = lines[0];
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/^(\w+)?Error: /m);
  expect(r.stderr).not.toMatch(/^node:internal/m);
  expect(line).not.toContain('internal error');
  expect(line.startsWith('machine: '), line).toBe(true);
  for (const n of names) expect(line).toContain(n);
  expect(r.status, `stderr: ${line}`).toBe(status);
  return line;
}

const tmpDirs: string[] = [];

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-cli-test-'));
  tmpDirs.push(d);
  return d;
}

/** A fresh 16 MiB machine, powered on, in its own temporary root. */
function poweredOnRoot(): string {
  const root = path.join(tempDir(), 'root');
  const r = runMachine(['power-on', '--root', root, '--mem', '16M', '--profile', 'idle', '--seed', '3']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return root;
}

function stateJsonOf(root: string): string {
  return path.join(root, 'lib', 'machine', 'state.json');
}

beforeAll(() => {
  ensureBuilt();
});

afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('machine: usage errors exit 64 with one line', () => {
  it('unknown profile names it and lists the valid ones', () => {
    const root = path.join(tempDir(), 'root');
    const r = runMachine(['power-on', '--root', root, '--mem', '16M', '--profile', 'nosuch']);
    expectCleanFailure(r, EX_USAGE, "'nosuch'", ...PROFILES);
    expect(fs.existsSync(path.join(root, 'lib', 'machine', 'ram'))).toBe(false);
  });

  it.each(['abc', '12X'])('--mem %s is not a size', (mem) => {
    const r = runMachine(['power-on', '--root', path.join(tempDir(), 'root'), '--mem', mem]);
    expectCleanFailure(r, EX_USAGE, '--mem', `'${mem}'`, 'not a size');
  });

  it.each(['8M', '32G'])('--mem %s is out of range', (mem) => {
    const r = runMachine(['power-on', '--root', path.join(tempDir(), 'root'), '--mem', mem]);
    expectCleanFailure(r, EX_USAGE, '--mem', mem, 'out of range', '16M', '16G');
  });

  it('--seed that is not a number names the value given', () => {
    const r = runMachine(['power-on', '--root', path.join(tempDir(), 'root'), '--mem', '16M', '--seed', 'abc']);
    expectCleanFailure(r, EX_USAGE, '--seed', 'abc');
  });

  it('--seconds that is not a number names the value given', () => {
    const root = poweredOnRoot();
    const r = runMachine(['run', '--root', root, '--seconds', 'abc']);
    expectCleanFailure(r, EX_USAGE, '--seconds', 'abc');
  });

  it('an unknown command is named', () => {
    const r = runMachine(['bogus', '--root', path.join(tempDir(), 'root')]);
    expectCleanFailure(r, EX_USAGE, 'bogus');
  });

  it('an unknown option is named', () => {
    const r = runMachine(['status', '--root', path.join(tempDir(), 'root'), '--bogus']);
    expectCleanFailure(r, EX_USAGE, 'bogus');
  });

  it('no command at all', () => {
    const r = runMachine(['--root', path.join(tempDir(), 'root')]);
    expectCleanFailure(r, EX_USAGE);
  });
});

describe('machine: a root that cannot be created', () => {
  // A path under a regular file: mkdir fails with ENOTDIR whatever the user's rights.
  function rootUnderFile(): string {
    const file = path.join(tempDir(), 'plain-file');
    fs.writeFileSync(file, 'not a directory\n');
    return path.join(file, 'root');
  }

  it('--root under a regular file exits 74 naming the path', () => {
    const root = rootUnderFile();
    const r = runMachine(['power-on', '--root', root, '--mem', '16M']);
    expectCleanFailure(r, EX_IOERR, root, 'not a directory');
  });

  it('LKCD_ROOT under a regular file gives the same line and status', () => {
    const root = rootUnderFile();
    const viaOption = runMachine(['power-on', '--root', root, '--mem', '16M']);
    const viaEnv = runMachine(['power-on', '--mem', '16M'], { LKCD_ROOT: root });
    expectCleanFailure(viaEnv, EX_IOERR, root);
    expect(viaEnv.stderr).toBe(viaOption.stderr);
  });

  it('names the path once, not twice', () => {
    const root = rootUnderFile();
    const line = expectCleanFailure(runMachine(['power-on', '--root', root, '--mem', '16M']), EX_IOERR, root);
    expect(line.split(root).length - 1, line).toBe(1);
  });
});

describe('machine: missing and corrupt machine state', () => {
  it('status on a root with no machine exits 66 naming the root', () => {
    const root = path.join(tempDir(), 'empty-root');
    fs.mkdirSync(root);
    expectCleanFailure(runMachine(['status', '--root', root]), EX_NOINPUT, root);
  });

  it('a RAM image of the wrong size exits 65 naming the file and both sizes', () => {
    const root = poweredOnRoot();
    const ram = path.join(root, 'lib', 'machine', 'ram');
    expect(fs.statSync(ram).size).toBe(16 * MiB);
    fs.truncateSync(ram, 8 * MiB);
    const r = runMachine(['status', '--root', root]);
    expectCleanFailure(r, EX_DATAERR, ram, String(8 * MiB), String(16 * MiB));
  });

  it('a state.json that is not JSON exits 65 naming it', () => {
    const root = poweredOnRoot();
    fs.writeFileSync(stateJsonOf(root), '{nope\n');
    expectCleanFailure(runMachine(['status', '--root', root]), EX_DATAERR, stateJsonOf(root));
  });

  it('a state.json holding JSON null exits 65 naming it', () => {
    const root = poweredOnRoot();
    fs.writeFileSync(stateJsonOf(root), 'null\n');
    expectCleanFailure(runMachine(['status', '--root', root]), EX_DATAERR, stateJsonOf(root));
  });

  it('an RTC file whose checksum fails exits 65 naming it; status shows the RTC it holds otherwise', () => {
    const root = poweredOnRoot();
    const rtc = path.join(root, 'lib', 'machine', 'rtc');
    const good = runMachine(['status', '--root', root]);
    expect(good.status).toBe(0);
    // rtc_sec at offset 8 of the 24-byte file: the RTC status prints.
    const sec = fs.readFileSync(rtc).readBigUInt64LE(8);
    expect(good.stdout).toContain(`clock:     RTC ${new Date(Number(sec) * 1000).toISOString().replace('T', ' ').slice(0, 19)} UTC, booted `);
    const bytes = fs.readFileSync(rtc);
    bytes[8] ^= 1;
    fs.writeFileSync(rtc, bytes);
    expectCleanFailure(runMachine(['status', '--root', root]), EX_DATAERR, rtc, 'RTC checksum');
    // A command that would change the machine refuses it before doing anything.
    const ram = fs.readFileSync(path.join(root, 'lib', 'machine', 'ram'));
    expectCleanFailure(runMachine(['run', '--root', root, '--seconds', '1']), EX_DATAERR, rtc, 'RTC checksum');
    expect(fs.readFileSync(path.join(root, 'lib', 'machine', 'ram')).equals(ram)).toBe(true);
    expect(fs.readFileSync(rtc).equals(bytes)).toBe(true);
  });

  it('a state.json with a CR3 that is not a number exits 65 naming it', () => {
    const root = poweredOnRoot();
    const state = JSON.parse(fs.readFileSync(stateJsonOf(root), 'utf8')) as { cpu: { cr3: string } };
    state.cpu.cr3 = 'zz';
    fs.writeFileSync(stateJsonOf(root), JSON.stringify(state));
    expectCleanFailure(runMachine(['status', '--root', root]), EX_DATAERR, stateJsonOf(root));
  });
});

describe('machine: a 16M machine from power-on to power-off', () => {
  let root = '';
  let powerOn: RunResult;

  beforeAll(() => {
    root = path.join(tempDir(), 'root');
    powerOn = runMachine(['power-on', '--root', root, '--mem', '16M', '--profile', 'idle', '--seed', '3']);
  });

  it('power-on exits 0 and its page table sums to the page-frame count', () => {
    expect(powerOn.stderr).toBe('');
    expect(powerOn.status).toBe(0);
    const lines = powerOn.stdout.split('\n');
    const frames = /^machine:\s+16M RAM, (\d+) page frames,/.exec(lines[0]);
    expect(frames, lines[0]).not.toBeNull();
    expect(Number(frames![1])).toBe((16 * MiB) / PAGE_SIZE);
    const at = lines.indexOf('pages:');
    expect(at).toBeGreaterThan(0);
    const rows = lines.slice(at + 1).filter((l) => l !== '');
    expect(rows).toHaveLength(6);
    const counts = rows.map((row) => {
      const m = /^ {2}(\w+)\s+(\d+)\s+\d+\.\d%$/.exec(row);
      expect(m, row).not.toBeNull();
      return Number(m![2]);
    });
    expect(counts.reduce((a, b) => a + b, 0)).toBe(Number(frames![1]));
  });

  it('status --json parses and counts every page frame', () => {
    const r = runMachine(['status', '--root', root, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout) as { ram_bytes: number; pages: { total: number }; profile: string; seed: number };
    expect(s.ram_bytes).toBe(16 * MiB);
    expect(s.pages.total).toBe((16 * MiB) / PAGE_SIZE);
    expect(s.profile).toBe('idle');
    expect(s.seed).toBe(3);
  });

  let dmesgBefore = 0;

  it('dmesg starts with the Linux version banner', () => {
    const r = runMachine(['dmesg', '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines[0].startsWith('[    0.000000] Linux version 5.4.0-lkcd-lowmem'), lines[0]).toBe(true);
    dmesgBefore = lines.length;
  });

  it('run --seconds 5 exits 0 and the log does not shrink', () => {
    const r = runMachine(['run', '--root', root, '--seconds', '5']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ran 5 s: /);
    const after = runMachine(['dmesg', '--root', root]);
    expect(after.status).toBe(0);
    expect(after.stdout.split('\n').filter((l) => l !== '').length).toBeGreaterThanOrEqual(dmesgBefore);
  });

  it('ps lists swapper/0 as pid 0 and kthreadd', () => {
    const r = runMachine(['ps', '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\s+0\s+\S+\s+0x[0-9a-f]+\s+\[swapper\/0\]$/m);
    expect(r.stdout).toMatch(/^\s+\d+\s+\S+\s+0x[0-9a-f]+\s+\[kthreadd\]$/m);
  });

  it('after power-off, status exits 64 saying the machine is powered off', () => {
    const off = runMachine(['power-off', '--root', root]);
    expect(off.stderr).toBe('');
    expect(off.status).toBe(0);
    expectCleanFailure(runMachine(['status', '--root', root]), EX_USAGE, root, 'powered off');
  });
});

describe('machine --help', () => {
  it('lists every command and exits 0', () => {
    const r = runMachine(['--help']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^\\s+machine ${c}\\s`, 'm'));
  });
});
