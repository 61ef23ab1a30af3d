/**
 * The dump commands as an admin runs them: `lkcd config`, `kexec`, and the
 * crash commands of `machine`, each the built binary in a child process
 * with --root in a temporary directory. Failures must be clean: the
 * sysexits status, exactly one stderr line naming what was wrong, and no
 * trace of an uncaught exception.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EX_DATAERR, EX_NOINPUT, EX_USAGE, ensureBuilt, expectCleanFailure, expectOk, runTool, type RunResult, type Tool,
} from '../helpers/cli.js';

/** Runs a built CLI with no LKCD_* variables from the caller's environment. */
function run(tool: Tool, root: string, args: readonly string[]): RunResult {
  return runTool(tool, root, args);
}

const ok = expectOk;
const cleanFailure = expectCleanFailure;

const tmpDirs: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-dumpcli-'));
  tmpDirs.push(d);
  return d;
}

/** A fresh 16 MiB idle machine in its own root. */
function poweredOn(seed: number): string {
  const root = path.join(tempDir(), 'root');
  ok(run('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', String(seed)]));
  return root;
}

const sysconfigOf = (root: string): string => path.join(root, 'etc', 'sysconfig', 'dump');
const ADDR = /config block at (0x[0-9a-f]+)/;

beforeAll(() => ensureBuilt());
afterAll(() => { for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true }); });

describe('lkcd config, kexec and a panic on a fresh machine', () => {
  let root: string;
  let addr: string;

  beforeAll(() => { root = poweredOn(61); });

  it('lkcd config writes etc/sysconfig/dump (0600) and prints the config block address /proc shows', () => {
    expect(fs.existsSync(sysconfigOf(root))).toBe(false);
    const out = ok(run('lkcd', root, ['config']));
    expect(fs.statSync(sysconfigOf(root)).mode & 0o777).toBe(0o600);
    const m = ADDR.exec(out);
    expect(m, out).not.toBeNull();
    addr = m![1];
    expect(out).toMatch(/^Preloading kernel for kexec based dumping: \S+ --command-line=".*"$/m);
    expect(ok(run('machine', root, ['proc', 'sys/kernel/dump/addr']))).toBe(`${addr}\n`);
    expect(ok(run('machine', root, ['proc', 'sys/kernel/kexec_loaded']))).toBe('1\n');
  });

  it('kexec -s shows the preloaded command line ending in crashdump=<that address>', () => {
    const out = ok(run('kexec', root, ['-s']));
    const m = /command line "(.*)"$/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(m![1].endsWith(` crashdump=${addr}`), m![1]).toBe(true);
  });

  it('machine panic saves the dump and boots a kernel that reserved it', () => {
    const out = ok(run('machine', root, ['panic', 'cli test panic']));
    expect(out).toMatch(/^dump: saved \d+ pages/m);
    expect(out).toMatch(new RegExp(`^kexec: booted \\S+; saved dump reserved at ${addr}$`, 'm'));
    expect(ok(run('machine', root, ['proc', 'cmdline']))).toContain(`crashdump=${addr}`);
    const log = ok(run('machine', root, ['dmesg']));
    expect(log).toMatch(new RegExp(`Dump may be available from previous boot: \\d+ pages in \\d+ frames at ${addr}`));
  });

  it('kexec -e with no image loaded exits 64 with one line', () => {
    // The kernel holding the dump reloaded kexec at its boot (the held dump survives a second crash): unload it.
    expect(ok(run('machine', root, ['proc', 'sys/kernel/kexec_loaded']))).toBe('1\n');
    expect(ok(run('kexec', root, ['-u']))).toBe('kexec: unloaded\n');
    expect(ok(run('machine', root, ['proc', 'sys/kernel/kexec_loaded']))).toBe('0\n');
    cleanFailure(run('kexec', root, ['-e']), 'kexec', EX_USAGE, 'no kernel is loaded');
  });

  it('kexec -l of a truncated image exits 65 naming the file', () => {
    const image = fs.readdirSync(path.join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    expect(image).toBeDefined();
    const bad = path.join(tempDir(), 'vmlinuz-truncated');
    const bytes = fs.readFileSync(path.join(root, 'boot', image!));
    fs.writeFileSync(bad, bytes.subarray(0, Math.floor(bytes.length / 2)));
    cleanFailure(run('kexec', root, ['-l', bad]), 'kexec', EX_DATAERR, bad);
    expect(ok(run('machine', root, ['proc', 'sys/kernel/kexec_loaded']))).toBe('0\n');
  });
});

describe('malformed etc/sysconfig/dump', () => {
  let root: string;
  let template: string;
  let addr: string;

  beforeAll(() => {
    root = poweredOn(62);
    addr = ADDR.exec(ok(run('lkcd', root, ['config'])))![1];
    template = fs.readFileSync(sysconfigOf(root), 'utf8');
  });

  const set = (key: string, value: string) => (text: string): string => {
    const re = new RegExp(`^${key}=.*$`, 'm');
    expect(text).toMatch(re);
    return text.replace(re, `${key}=${value}`);
  };

  const cases: Array<[string, (t: string) => string, number, (file: string) => string[]]> = [
    ['DUMP_LEVEL=7', set('DUMP_LEVEL', '7'), EX_USAGE, (f) => [f, 'DUMP_LEVEL']],
    ['DUMP_FLAGS=12', set('DUMP_FLAGS', '12'), EX_USAGE, (f) => [f, 'DUMP_FLAGS']],
    ['DUMP_COMPRESS=x', set('DUMP_COMPRESS', 'x'), EX_USAGE, (f) => [f, 'DUMP_COMPRESS']],
    ['a garbage line', (t) => `${t}garbage line\n`, EX_USAGE, (f) => [f, 'garbage line']],
    ['DUMPDIR=/../../etc', set('DUMPDIR', '/../../etc'), EX_USAGE, (f) => [f, 'DUMPDIR']],
    ['a KEXEC_IMAGE that does not exist', set('KEXEC_IMAGE', '/boot/vmlinuz-nosuch'), EX_NOINPUT, () => ['KEXEC_IMAGE', path.join('boot', 'vmlinuz-nosuch')]],
  ];

  it.each(cases)('%s: one stderr line naming the file and key, nothing changed', (_name, edit, status, names) => {
    fs.writeFileSync(sysconfigOf(root), edit(template), { mode: 0o600 });
    cleanFailure(run('lkcd', root, ['config']), 'lkcd', status, ...names(sysconfigOf(root)));
    expect(ok(run('machine', root, ['proc', 'sys/kernel/dump/addr']))).toBe(`${addr}\n`);
  });
});

describe('Alt+SysRq+d from the command line', () => {
  let root: string;

  beforeAll(() => {
    root = poweredOn(63);
    ok(run('lkcd', root, ['config']));
  });

  it('machine sysrq d saves a live dump, the system keeps running and logs it', () => {
    const out = ok(run('machine', root, ['sysrq', 'd']));
    expect(out).toMatch(/^dump: saved \d+ pages/m);
    const log = ok(run('machine', root, ['dmesg']));
    expect(log).toMatch(/\] sysrq: Dump$/m);
    expect(log).toMatch(/\] sysrq: Dump: live dump of \d+ pages saved in \d+ frames at 0x[0-9a-f]+; system continues$/m);
    expect(ok(run('machine', root, ['status']))).toMatch(/^machine: /m);
    ok(run('machine', root, ['run', '--seconds', '2']));
  });

  it('a second machine sysrq d with the dump pending is refused: exit 64, one line naming the block address', () => {
    const addr = ok(run('machine', root, ['proc', 'sys/kernel/dump/addr'])).trim();
    cleanFailure(run('machine', root, ['sysrq', 'd']), 'machine', EX_USAGE, 'awaiting writeout', addr);
  });

  it('machine panic with the live dump pending keeps it, and still reboots into the preloaded kernel', () => {
    const addr = ok(run('machine', root, ['proc', 'sys/kernel/dump/addr'])).trim();
    const out = ok(run('machine', root, ['panic', 'panic after sysrq d']));
    expect(out).not.toMatch(/^dump: saved/m);
    expect(out).toMatch(new RegExp(`^kexec: booted \\S+; saved dump reserved at ${addr}$`, 'm'));
  });
});
