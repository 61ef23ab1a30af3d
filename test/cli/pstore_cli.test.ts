/**
 * pstore as an admin runs it, through the built CLIs: a crash with both
 * pstore and the LKCD soft-boot dump yields both, linked in the index; a
 * crash with no kexec kernel still leaves the records (reboot=warm);
 * `machine sys` and `lkcd pstore save` fail cleanly on bad input.
 * Truth: what `machine sys cat` printed before the archiver ran, the
 * files it wrote, and the kernel's own log lines.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ensureBuilt, EX_NOINPUT, EX_USAGE, expectCleanFailure, okRun, REPO, runTool } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';

const tmp = makeTempDir('pstore-cli');
afterAll(() => removeTempDir(tmp));

const REGION = 'memmap=320K$24M ramoops.mem_address=0x1800000 ramoops.mem_size=0x40000 ramoops.record_size=0x4000 ramoops.console_size=0x8000 ramoops.devcoredump_size=0x10000';
const CMDLINE = `root=/dev/vda1 ro console=ttyS0,115200 panic=5 reboot=warm ${REGION}`;

/**
 * `machine panic` on a machine whose full-dump driver is not configured: pstore keeps the records,
 * but no dump survives the crash, so it exits DUMP_LOST (6) after its normal output, one line on stderr.
 */
function panicWithoutDump(root: string, message: string): string {
  const r = runTool('machine', root, ['panic', message]);
  expect(r.status, r.stderr).toBe(6);
  expect(r.stderr).toMatch(/^machine: this crash was not dumped: the dump driver is not configured \(run lkcd config\)\n$/);
  return r.stdout;
}

function powerOn(root: string, cmdline = CMDLINE): void {
  okRun('machine', root, ['power-on', '--mem', '32M', '--profile', 'idle', '--seed', '6', '--cmdline', cmdline]);
}

/** `machine sys ls fs/pstore`: the file names. */
function pstoreNames(root: string): string[] {
  return okRun('machine', root, ['sys', 'ls', 'fs/pstore']).split('\n').filter((l) => l).map((l) => l.split(' ').pop()!);
}

/** `machine sys cat fs/pstore/NAME`, its stdout as bytes (the devcoredump file is binary). */
function cat(root: string, name: string): Buffer {
  const r = spawnSync(process.execPath, [BIN.machine, '--root', root, 'sys', 'cat', `fs/pstore/${name}`], { cwd: REPO, encoding: 'buffer', env: { PATH: process.env.PATH ?? '' } });
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

beforeAll(() => ensureBuilt(), 300_000);

describe('a crash with pstore and the LKCD soft-boot dump configured yields both, linked', () => {
  const root = path.join(tmp, 'both');
  const before = new Map<string, Buffer>();
  let saveOut = '';
  beforeAll(() => {
    powerOn(root);
    okRun('lkcd', root, ['config']);
    okRun('machine', root, ['run', '--seconds', '2']);
    const panic = okRun('machine', root, ['panic', 'pstorecli both: fatal']);
    expect(panic).toMatch(/^kexec: booted .*; saved dump reserved at/m);
    expect(panic).toMatch(/^pstore: the panic log was saved in ramoops dmesg zone 0$/m);
    for (const n of pstoreNames(root)) before.set(n, cat(root, n));
    okRun('lkcd', root, ['config']);
    okRun('lkcd', root, ['save']);
    saveOut = okRun('lkcd', root, ['pstore', 'save']);
  }, 300_000);

  it('the kexec\'d kernel was booted with the ramoops parameters lkcd config passed on, and exposed the records', () => {
    const cmdline = okRun('machine', root, ['proc', 'cmdline']);
    for (const w of REGION.split(' ')) expect(cmdline).toContain(w);
    expect(cmdline).toContain('reboot=warm');
    expect([...before.keys()].sort()).toEqual(['console-ramoops-0', 'devcoredump-ramoops-0', 'dmesg-ramoops-0']);
    expect(before.get('dmesg-ramoops-0')!.toString('latin1')).toMatch(/^Panic#1 Part1\n[\s\S]*<0>\[\s*\d+\.\d{6}\] Kernel panic - not syncing: pstorecli both: fatal\n$/);
  });

  it('lkcd pstore save moves the files to DUMPDIR/pstore/<date>/ (0600 in 0700), byte for byte, and empties /sys/fs/pstore', () => {
    const top = path.join(root, 'log', 'dump', 'pstore');
    const dirs = fs.readdirSync(top);
    expect(dirs).toHaveLength(1);
    expect(dirs[0]).toMatch(/^\d{4}-\d{2}-\d{2}-\d{6}$/);
    const dir = path.join(top, dirs[0]);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(dir).sort()).toEqual([...before.keys()].sort());
    for (const [name, bytes] of before) {
      expect(fs.readFileSync(path.join(dir, name)).equals(bytes), name).toBe(true);
      expect(fs.statSync(path.join(dir, name)).mode & 0o777).toBe(0o600);
    }
    expect(saveOut).toContain(`archived 3 records to ${dir}`);
    expect(saveOut).toContain("the crash's full dump is dump 0");
    expect(pstoreNames(root)).toEqual([]);
    expect(okRun('lkcd', root, ['pstore', 'save'])).toBe('lkcd pstore save: /sys/fs/pstore is empty\n');
  });

  it('the index links every record to dump 0, and lkcd search finds the panic line in the dump and in the records', () => {
    const rows = JSON.parse(okRun('lkcd', root, ['pstore', 'list', '--json'])) as Array<{ file: string; dump_n: number | null; panic_string: string; reason: string }>;
    expect(rows.map((r) => [r.file, r.dump_n, r.panic_string]).sort()).toEqual([
      ['console-ramoops-0', 0, 'pstorecli both: fatal'], ['devcoredump-ramoops-0', 0, 'pstorecli both: fatal'], ['dmesg-ramoops-0', 0, 'pstorecli both: fatal'],
    ]);
    const hits = okRun('lkcd', root, ['search', 'pstorecli both']).trimEnd().split('\n');
    expect(hits[0]).toMatch(/^0: \[\s*\d+\.\d{6}\] Kernel panic - not syncing: pstorecli both: fatal$/);
    expect(hits.slice(1).map((h) => h.replace(/: \[.*$/, '')).sort()).toEqual([
      expect.stringMatching(/^pstore \d{4}-\d{2}-\d{2}-\d{6}\/console-ramoops-0$/), expect.stringMatching(/^pstore \d{4}-\d{2}-\d{2}-\d{6}\/dmesg-ramoops-0$/),
    ]);
  });

  it('lkcd reindex rebuilds the pstore rows from the archive alone', () => {
    expect(okRun('lkcd', root, ['reindex'])).toMatch(/^reindexed 1 dump and 3 pstore records in /);
    const rows = JSON.parse(okRun('lkcd', root, ['pstore', 'list', '--json'])) as Array<{ file: string; dump_n: number | null }>;
    expect(rows.map((r) => [r.file, r.dump_n]).sort()).toEqual([['console-ramoops-0', 0], ['devcoredump-ramoops-0', 0], ['dmesg-ramoops-0', 0]]);
  });
});

describe('a crash where the full dump fails still leaves the pstore records', () => {
  it('no kexec kernel: the firmware restart is warm (reboot=warm), the records survive and are archived, linked to no dump', () => {
    const root = path.join(tmp, 'nokexec');
    powerOn(root);
    okRun('machine', root, ['oops', '--no-panic']);
    const out = panicWithoutDump(root, 'pstorecli nokexec: fatal');
    expect(out).toContain('dump: the dump driver is not configured (run lkcd config)');
    expect(out).toMatch(/^warm reboot: .* booted; memory was kept$/m);
    expect(pstoreNames(root)).toEqual(['console-ramoops-0', 'devcoredump-ramoops-0', 'dmesg-ramoops-0', 'dmesg-ramoops-1']);
    expect(cat(root, 'dmesg-ramoops-0').toString('latin1').split('\n')[0]).toBe('Oops#1 Part1');
    expect(cat(root, 'dmesg-ramoops-1').toString('latin1')).toContain('Kernel panic - not syncing: pstorecli nokexec: fatal');
    const save = okRun('lkcd', root, ['pstore', 'save']);
    expect(save).toContain('archived 4 records');
    expect(save).toContain('no saved dump of the same crash (yet)');
    const rows = JSON.parse(okRun('lkcd', root, ['pstore', 'list', '--json'])) as Array<{ file: string; dump_n: number | null; reason: string; oops_count: number }>;
    expect(rows.map((r) => r.dump_n)).toEqual([null, null, null, null]);
    expect(rows.filter((r) => r.reason).map((r) => `${r.reason}#${r.oops_count}`).sort()).toEqual(['Oops#1', 'Panic#2']);
  });

  it('machine reboot with ramoops.max_reason=4 keeps a Shutdown record beside the Oops', () => {
    const root = path.join(tmp, 'reboot');
    powerOn(root, `${CMDLINE} ramoops.max_reason=4`);
    okRun('machine', root, ['oops', '--no-panic']);
    expect(okRun('machine', root, ['reboot'])).toMatch(/^reboot: warm reboot: .* booted; memory was kept$/m);
    expect(cat(root, 'dmesg-ramoops-0').toString('latin1').split('\n')[0]).toBe('Oops#1 Part1');
    expect(cat(root, 'dmesg-ramoops-1').toString('latin1')).toMatch(/^Shutdown#2 Part1\n[\s\S]*reboot: Restarting system\n$/);
  });
});

describe('machine sys and lkcd pstore save on bad input', () => {
  const root = path.join(tmp, 'errors');
  beforeAll(() => {
    powerOn(root);
    panicWithoutDump(root, 'pstorecli errors');
  }, 120_000);

  it('a missing file exits 66; a directory, a read-only file, a bad value exit 64; one line each', () => {
    expectCleanFailure(runTool('machine', root, ['sys', 'cat', 'fs/pstore/dmesg-ramoops-9']), 'machine', EX_NOINPUT, '/sys/fs/pstore/dmesg-ramoops-9', 'No such file');
    expectCleanFailure(runTool('machine', root, ['sys', 'cat', '/sys/fs/pstore']), 'machine', EX_USAGE, '/sys/fs/pstore', 'Is a directory');
    expectCleanFailure(runTool('machine', root, ['sys', 'rm', 'module/ramoops/parameters/ecc']), 'machine', EX_USAGE, 'ecc', 'Operation not permitted');
    expectCleanFailure(runTool('machine', root, ['sys', 'write', 'module/ramoops/parameters/ecc', '1']), 'machine', EX_USAGE, 'Permission denied');
    expectCleanFailure(runTool('machine', root, ['sys', 'write', 'class/devcoredump/disabled', '0']), 'machine', EX_USAGE, 'disabled', 'Invalid argument');
    expectCleanFailure(runTool('machine', root, ['sys', 'ls', 'fs/../etc']), 'machine', EX_USAGE, "'..'");
  });

  it('ls shows mode, size and the record time; export writes the files with them for real tools', () => {
    const ls = okRun('machine', root, ['sys', 'ls', 'fs/pstore']);
    const line = ls.split('\n').find((l) => l.endsWith(' dmesg-ramoops-0'))!;
    expect(line).toMatch(/^-r--r--r-- +\d+ \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} dmesg-ramoops-0$/);
    const out = path.join(tmp, 'export');
    expect(okRun('machine', root, ['sys', 'export', out])).toMatch(/^exported 3 files of \/sys\/fs\/pstore to /);
    const f = path.join(out, 'fs', 'pstore', 'dmesg-ramoops-0');
    expect(fs.readFileSync(f)).toEqual(cat(root, 'dmesg-ramoops-0'));
    expect(fs.statSync(f).mode & 0o777).toBe(0o444);
    const [, size, day, time] = /^\S+ +(\d+) (\S+) (\S+)/.exec(line)!;
    expect(fs.statSync(f).size).toBe(Number(size));
    expect(fs.statSync(f).mtime.toISOString().slice(0, 19)).toBe(`${day}T${time}`);
  });

  it('devcoredump can be switched off once, and it stays off', () => {
    okRun('machine', root, ['sys', 'write', 'class/devcoredump/disabled', '1']);
    expect(okRun('machine', root, ['sys', 'cat', 'class/devcoredump/disabled'])).toBe('1\n');
    expect(panicWithoutDump(root, 'pstorecli after disable')).not.toMatch(/device coredump of/);
  });

  it('a region memmap= does not reserve is refused with one log line, and there is no pstore', () => {
    const bad = path.join(tmp, 'unreserved');
    powerOn(bad, CMDLINE.replace(/memmap=\S+ /, ''));
    expect(okRun('machine', bad, ['dmesg'])).toMatch(/ramoops: region 0x1800000-0x184ffff is not reserved \(add memmap=320K\$24576K to the command line\); ramoops disabled/);
    expect(okRun('machine', bad, ['sys', 'ls'])).not.toMatch(/ fs\/$/m);
    expect(okRun('lkcd', bad, ['pstore', 'save'])).toBe('lkcd pstore save: no pstore backend in the running kernel (boot it with ramoops.* parameters)\n');
  });
});
