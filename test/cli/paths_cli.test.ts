/**
 * Paths that cannot escape, outputs that cannot replace inputs, and inputs
 * that cannot hang (issue 8, items 9-11 and the hang cases), as an admin
 * meets them: the built CLIs in child processes on a 16 MiB machine. Every
 * refusal is one stderr line with the documented status, an empty stdout,
 * and every file it names byte-identical afterwards (sha256 before and
 * after); every hang case ends, with one line, well inside a timeout.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLkcdFile } from '../../src/dump/index.js';
import { EXIT_STATUS_MEANINGS } from '../../src/cli/exit.js';
import {
  BIN, cleanFailure, copyRoot, deviceOf, dumpDirOf, ensureBuilt, EX_USAGE, INDEX_FILE_NAME, modeOf, ok, REPO, run, setSysconfig,
  sha256File, sysconfigOf, type RunResult, type Tool,
} from '../helpers/lkcd.js';

const EX_IOERR = 74;
const EX_DATAERR = 65;
/** A hang case must end well inside this; the child is killed at HANG_LIMIT_MS. */
const HANG_LIMIT_MS = 30_000;

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-paths-cli-')));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Dump 0 saved; the device holds it, marked saved. */
const saved = path.join(tmp, 'saved');
/** The same machine crashed again: a dump waits in memory for `lkcd config` to write it to DUMPDEV. */
const pending = path.join(tmp, 'pending');

const ramOf = (root: string): string => path.join(root, 'lib', 'machine', 'ram');
const stateOf = (root: string): string => path.join(root, 'lib', 'machine', 'state.json');
const indexOf = (root: string): string => path.join(dumpDirOf(root), INDEX_FILE_NAME);
const dump0Of = (root: string): string => path.join(dumpDirOf(root), '0', 'dump.0');
function bootImageOf(root: string): string {
  const name = fs.readdirSync(path.join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  expect(name).toBeDefined();
  return path.join(root, 'boot', name!);
}

/** sha256 of each file that exists, by path: "nothing changed" is this map equal before and after. */
function shas(files: string[]): Record<string, string | null> {
  return Object.fromEntries(files.map((f) => [f, fs.existsSync(f) ? sha256File(f) : null]));
}

/** Every file under `dir` (names and sizes): nothing may appear or change there. */
function listing(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((n) => {
    const st = fs.lstatSync(path.join(dir, n));
    return `${n} ${st.isFile() ? st.size : st.isSymbolicLink() ? 'link' : 'dir'}`;
  });
}

/** A refusal: `status`, one stderr line naming `names`, nothing on stdout. */
function refused(r: RunResult, tool: Tool, status: number, ...names: string[]): string {
  const line = cleanFailure(r, tool, status, ...names);
  expect(r.stdout).toBe('');
  return line;
}

beforeAll(() => {
  ensureBuilt();
  ok(run('machine', saved, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '81']));
  ok(run('lkcd', saved, ['config']));
  ok(run('machine', saved, ['panic', 'paths test: first crash']));
  ok(run('lkcd', saved, ['config']));
  expect(ok(run('lkcd', saved, ['save']))).toMatch(/^lkcd save: saved dump 0 to /);
  copyRoot(saved, pending);
  expect(ok(run('machine', pending, ['panic', 'paths test: second crash']))).toMatch(/^kexec: booted .*; saved dump reserved at /m);
});

describe('configured paths made links that leave the root', () => {
  /** A 1 MiB file of non-zero bytes outside the root, a directory holding it, and its sha256. */
  function victim(name: string): { dir: string; file: string; sha: string } {
    const dir = path.join(tmp, `outside-${name}`);
    fs.mkdirSync(dir);
    const file = path.join(dir, 'victim');
    fs.writeFileSync(file, Buffer.alloc(1 << 20, 0x5a));
    return { dir, file, sha: sha256File(file) };
  }

  it('dev/vmdump -> a file outside: lkcd config (a dump pending writeout) and lkcd save exit 64; the file is untouched, the dump still pending', () => {
    const root = path.join(tmp, 'dev-link');
    copyRoot(pending, root);
    const v = victim('dev');
    fs.rmSync(deviceOf(root));
    fs.symlinkSync(v.file, deviceOf(root));
    const inside = shas([ramOf(root), indexOf(root), dump0Of(root)]);
    for (const cmd of ['config', 'save']) {
      refused(run('lkcd', root, [cmd]), 'lkcd', EX_USAGE, sysconfigOf(root), "DUMPDEV '/dev/vmdump' leaves the machine root", v.file);
    }
    expect(sha256File(v.file)).toBe(v.sha);
    expect(listing(v.dir)).toEqual(['victim 1048576']);
    expect(shas([ramOf(root), indexOf(root), dump0Of(root)])).toEqual(inside);
    // The dump is still held in memory: once the link is a device again, the writeout happens.
    fs.rmSync(deviceOf(root));
    expect(ok(run('lkcd', root, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
  });

  it.each(['save', 'list', 'config'])('log/dump -> a file outside: lkcd %s exits 64 and the file is untouched', (cmd) => {
    const root = path.join(tmp, `log-link-${cmd}`);
    copyRoot(cmd === 'save' ? saved : pending, root);
    const v = victim(`log-${cmd}`);
    fs.rmSync(dumpDirOf(root), { recursive: true });
    fs.symlinkSync(v.file, dumpDirOf(root));
    refused(run('lkcd', root, [cmd]), 'lkcd', EX_USAGE, "DUMPDIR '/log/dump' leaves the machine root", v.file);
    expect(sha256File(v.file)).toBe(v.sha);
    expect(listing(v.dir)).toEqual(['victim 1048576']);
  });

  it('log -> a directory outside (DUMPDIR below a link): lkcd save exits 64 and writes nothing there', () => {
    const root = path.join(tmp, 'log-dir-link');
    copyRoot(saved, root);
    const v = victim('logdir');
    fs.rmSync(path.join(root, 'log'), { recursive: true });
    fs.symlinkSync(v.dir, path.join(root, 'log'));
    refused(run('lkcd', root, ['save']), 'lkcd', EX_USAGE, 'DUMPDIR', `resolves to ${path.join(v.dir, 'dump')}`);
    expect(listing(v.dir)).toEqual(['victim 1048576']);
  });

  it('the index in DUMPDIR made a link to a file outside: every lkcd command that opens DUMPDIR exits 64', () => {
    const root = path.join(tmp, 'index-link');
    copyRoot(saved, root);
    const v = victim('index');
    fs.rmSync(indexOf(root));
    fs.symlinkSync(v.file, indexOf(root));
    for (const args of [['list'], ['save'], ['reindex']]) refused(run('lkcd', root, args), 'lkcd', EX_USAGE, INDEX_FILE_NAME, v.file);
    expect(sha256File(v.file)).toBe(v.sha);
  });
});

describe('DUMPDEV naming a file the machine lives on', () => {
  let root: string;
  let files: string[];
  beforeAll(() => {
    root = path.join(tmp, 'dumpdev-own');
    copyRoot(pending, root);
    fs.linkSync(ramOf(root), path.join(root, 'dev', 'ram-alias'));
    files = [ramOf(root), stateOf(root), bootImageOf(root), indexOf(root), dump0Of(root), deviceOf(root), sysconfigOf(root)];
  });

  it.each([
    ['the RAM image', '/lib/machine/ram', "the machine's RAM image"],
    ['state.json', '/lib/machine/state.json', "the machine's state"],
    ['the boot image', 'BOOT', "the machine's kernel images and maps"],
    ['the dump index', `/log/dump/${INDEX_FILE_NAME}`, 'the dump index'],
    ['a saved dump', '/log/dump/0/dump.0', 'saved dump 0'],
    ['a hard link to the RAM image', '/dev/ram-alias', "the machine's RAM image"],
  ])('%s: lkcd config exits 64 naming the file, DUMPDEV and what it is; nothing changes and the dump stays pending', (_what, value, what) => {
    const before = shas(files);
    const sysconfig = fs.readFileSync(sysconfigOf(root));
    setSysconfig(root, 'DUMPDEV', value === 'BOOT' ? `/boot/${path.basename(bootImageOf(root))}` : value);
    try {
      const line = refused(run('lkcd', root, ['config']), 'lkcd', EX_USAGE, sysconfigOf(root), 'DUMPDEV', what, 'cannot be the dump device');
      expect(line).not.toContain('wrote');
      refused(run('lkcd', root, ['save']), 'lkcd', EX_USAGE, 'DUMPDEV', what);
    } finally {
      fs.writeFileSync(sysconfigOf(root), sysconfig);
    }
    expect(shas(files)).toEqual(before);
  });

  it('with DUMPDEV restored, the pending dump is written out: the refusals lost nothing', () => {
    expect(ok(run('lkcd', root, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
    expect(ok(run('lkcd', root, ['save']))).toMatch(/^lkcd save: saved dump 1 to /m);
  });

  it('KEXEC_IMAGE naming the RAM image is refused (64); a FIFO as DUMPDEV is refused (74) without blocking', () => {
    const copy = path.join(tmp, 'kexec-image-ram');
    copyRoot(pending, copy);
    setSysconfig(copy, 'KEXEC_IMAGE', '/lib/machine/ram');
    refused(run('lkcd', copy, ['config']), 'lkcd', EX_USAGE, 'KEXEC_IMAGE', "the machine's RAM image");
    setSysconfig(copy, 'KEXEC_IMAGE', `/boot/${path.basename(bootImageOf(copy))}`);
    execFileSync('mkfifo', [path.join(copy, 'dev', 'fifo')]);
    setSysconfig(copy, 'DUMPDEV', '/dev/fifo');
    refused(timedRun('lkcd', copy, ['config']), 'lkcd', EX_IOERR, 'DUMPDEV', 'is a FIFO, not a regular file');
  });
});

describe('an output over an input of the same command, or over a machine file', () => {
  let root: string;
  beforeAll(() => {
    root = path.join(tmp, 'outputs');
    copyRoot(saved, root);
  });

  it('lkcd export 0 --elf -o DUMPDIR/0/dump.0 (and a hard link to it elsewhere) exits 64; dump.0 is byte-identical and verifies', () => {
    const alias = path.join(tmp, 'dump0-alias');
    fs.linkSync(dump0Of(root), alias);
    const before = shas([dump0Of(root), indexOf(root)]);
    for (const out of [dump0Of(root), alias]) {
      refused(run('lkcd', root, ['export', '0', '--elf', '-o', out]), 'lkcd', EX_USAGE, `output ${out}`, 'saved dump 0', 'refusing to write over it');
    }
    expect(shas([dump0Of(root), indexOf(root)])).toEqual(before);
    expect(ok(run('lkcd', root, ['verify', '0']))).toMatch(/^dump 0: \d+ pages verified/);
  });

  it('lkcd read -o the index, its -wal, bounds or map.0 exits 64; each is byte-identical', () => {
    const targets = [indexOf(root), `${indexOf(root)}-wal`, path.join(dumpDirOf(root), 'bounds'), path.join(dumpDirOf(root), '0', 'map.0')];
    const before = shas(targets);
    for (const out of targets) refused(run('lkcd', root, ['read', '0', '--pfn', '0x100', '-o', out]), 'lkcd', EX_USAGE, `output ${out}`, 'refusing to write over it');
    expect(shas(targets)).toEqual(before);
  });

  it('machine export-vmcore -o lib/machine/ram, a hard link to it outside the root, state.json, boot/vmlinuz or a saved dump exits 64; they are byte-identical', () => {
    const alias = path.join(tmp, 'ram-alias');
    fs.linkSync(ramOf(root), alias);
    const targets = [ramOf(root), bootImageOf(root), stateOf(root), dump0Of(root)];
    const before = shas(targets);
    for (const [out, what] of [[ramOf(root), "the machine's RAM image"], [alias, "the machine's RAM image"], [bootImageOf(root), 'kernel images'],
      [stateOf(root), "the machine's state"], [dump0Of(root), 'the dump directory (log/dump)']]) {
      refused(run('machine', root, ['export-vmcore', '-o', out]), 'machine', EX_USAGE, `output ${out}`, what);
    }
    expect(shas(targets)).toEqual(before);
    expect(ok(run('machine', root, ['status']))).toMatch(/^machine:\s+16M RAM/);
  });

  it('lkcd read -o creates a 0600 file holding the page, and replaces a 0644 one with a 0600 one', () => {
    const fresh = path.join(tmp, 'page-fresh');
    const old = path.join(tmp, 'page-old');
    fs.writeFileSync(old, 'previous content', { mode: 0o644 });
    fs.chmodSync(old, 0o644);
    const dump = openLkcdFile(dump0Of(root));
    let page: Uint8Array;
    try { page = dump.readPage(0x100n); } finally { dump.close(); }
    for (const out of [fresh, old]) {
      expect(ok(run('lkcd', root, ['read', '0', '--pfn', '0x100', '-o', out]))).toBe('');
      expect(modeOf(out), out).toBe(0o600);
      expect(fs.readFileSync(out).equals(Buffer.from(page)), out).toBe(true);
    }
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

/** Runs a CLI with a short timeout and asserts it ended by itself, quickly. */
function timedRun(tool: Tool, root: string, args: readonly string[]): RunResult {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') env[k] = v;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN[tool], '--root', root, ...args], {
    cwd: REPO, env: { ...env, LKCD_NO_PROGRESS: '1' }, encoding: 'utf8', timeout: HANG_LIMIT_MS, killSignal: 'SIGKILL',
  });
  const ms = Date.now() - t0;
  expect(r.signal, `${tool} ${args.join(' ')} was killed after ${ms} ms: it hung`).toBeNull();
  expect(ms).toBeLessThan(HANG_LIMIT_MS);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('inputs that used to hang end with one line in bounded time', () => {
  let root: string;
  let fifo: string;
  beforeAll(() => {
    root = path.join(tmp, 'hangs');
    copyRoot(saved, root);
    fifo = path.join(tmp, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
  });

  it('kexec -l /dev/zero exits 74: a character device, not a kernel image', () => {
    refused(timedRun('kexec', root, ['-l', '/dev/zero']), 'kexec', EX_IOERR, '/dev/zero is a character device, not a regular file');
  });

  it('kexec -l FIFO exits 74 without waiting for a writer', () => {
    refused(timedRun('kexec', root, ['-l', fifo]), 'kexec', EX_IOERR, `${fifo} is a FIFO`);
  });

  it('kexec -l of a 65 MiB file exits 64 naming the limit, reading none of it', () => {
    const big = path.join(tmp, 'big-image');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 65 << 20);
    refused(timedRun('kexec', root, ['-l', big]), 'kexec', EX_USAGE, `${big} is ${65 << 20} bytes, more than the ${64 << 20} allowed`);
    expect(ok(run('machine', root, ['proc', 'sys/kernel/kexec_loaded']))).toBe('1\n');
  });

  it('lkcd read -o FIFO exits 74 without opening it', () => {
    refused(timedRun('lkcd', root, ['read', '0', '--pfn', '0x100', '-o', fifo]), 'lkcd', EX_IOERR, `output ${fifo} is a FIFO`);
  });

  it.each([
    ['machine', ['status']], ['machine', ['power-on', '--mem', '16M']], ['lkcd', ['list']], ['kexec', ['-s']],
  ] as Array<[Tool, string[]]>)('--root /proc/self/x: %s %s exits 64', (tool, args) => {
    refused(timedRun(tool, '/proc/self/x', args), tool, EX_USAGE, 'machine root /proc/self/x resolves to /proc/', 'inside /proc');
  });

  it('--root naming a regular file, or a symbolic-link loop, exits 74 with one line', () => {
    const file = path.join(tmp, 'root-is-a-file');
    fs.writeFileSync(file, '');
    fs.symlinkSync('loop-b', path.join(tmp, 'loop-a'));
    fs.symlinkSync('loop-a', path.join(tmp, 'loop-b'));
    for (const tool of ['machine', 'lkcd'] as const) {
      const args = tool === 'machine' ? ['power-on', '--mem', '16M'] : ['list'];
      refused(timedRun(tool, file, args), tool, EX_IOERR, `machine root ${file} is a regular file, not a directory`);
      refused(timedRun(tool, path.join(tmp, 'loop-a'), args), tool, EX_IOERR, 'too many levels of symbolic links');
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });
});

describe('the query commands need no machine', () => {
  it('with state.json gone, then unreadable garbage, lkcd list, show and dmesg still read dump 0; machine status refuses', () => {
    const root = path.join(tmp, 'no-state');
    copyRoot(saved, root);
    const want = { list: ok(run('lkcd', root, ['list'])), dmesg: ok(run('lkcd', root, ['dmesg', '0'])) };
    fs.rmSync(stateOf(root));
    expect(ok(run('lkcd', root, ['list']))).toBe(want.list);
    expect(ok(run('lkcd', root, ['dmesg', '0']))).toBe(want.dmesg);
    fs.writeFileSync(stateOf(root), '{ not json');
    expect(ok(run('lkcd', root, ['list']))).toBe(want.list);
    expect(ok(run('lkcd', root, ['show', '0']))).toMatch(/dh_panic_string: paths test: first crash/);
    refused(run('machine', root, ['status']), 'machine', EX_DATAERR, stateOf(root));
  });
});

describe('--help lists the exit statuses', () => {
  const rowsOf = (help: string): number[] => help.split('Exit status:\n')[1].split('\n').map((l) => /^\s+(\d+)\s{2}/.exec(l)?.[1]).filter((x) => x !== undefined).map(Number);

  it.each([
    ['lkcd', ['--help'], [0, 3, 4, 5, 7, 64, 65, 66, 69, 70, 74, 75]],
    ['lkcd', ['status', '--help'], [0, 7, 64, 65, 66, 70, 74, 75]],
    ['lkcd', ['verify', '--help'], [0, 3, 4, 64, 65, 66, 69, 70, 74, 75]],
    ['lkcd', ['list', '--help'], [0, 64, 65, 66, 70, 74, 75]],
    ['machine', ['--help'], [0, 6, 64, 65, 66, 70, 74, 75]],
    ['machine', ['panic', '--help'], [0, 6, 64, 65, 66, 70, 74, 75]],
    ['kexec', ['--help'], [0, 1, 64, 65, 66, 70, 74, 75]],
  ] as Array<[Tool, string[], number[]]>)('%s %s', (tool, args, statuses) => {
    const help = ok(run(tool, saved, args));
    expect(rowsOf(help)).toEqual(statuses);
    for (const s of statuses) {
      const meaning = EXIT_STATUS_MEANINGS.find((m) => m.status === s)!.meaning;
      expect(help).toContain(`${String(s).padStart(2)}  ${meaning}`);
    }
  });
});
