/**
 * Real readers of what pstore left: a real Linux kernel (Debian's 6.1,
 * under QEMU, through shared/tools/pstore_kernel_oracle.sh) mounts pstore
 * over a copy of our RAM image and prints the same dmesg and console files
 * our kernel exposes, with and without ECC (bit flips included); the real
 * systemd-pstore archives the files `machine sys export` writes, and its
 * dmesg.txt holds our panic log.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelOops, pstoreFiles, Sysfs, type RunningSystem } from '../../src/kernel/index.js';
import { crashMachine } from '../../src/dump/index.js';
import { sysExport } from '../../src/cli/sys.js';
import { REPO } from '../helpers/cli.js';
import { zoneTable } from '../helpers/ramoops_decoder.js';
import { makeTempDir, MiB, powerOnTemp, removeTempDir, type TempMachine } from '../helpers/machine.js';
import { findTool, requireTools, runTool, skipWithout } from '../helpers/tools.js';

/** CI has shared/ beside the repository; a worktree under wt/ has it two levels up. */
const ORACLE = [path.join(REPO, '..', 'shared', 'tools', 'pstore_kernel_oracle.sh'), path.join(REPO, '..', '..', 'shared', 'tools', 'pstore_kernel_oracle.sh')]
  .find((p) => fs.existsSync(p)) ?? path.join(REPO, '..', 'shared', 'tools', 'pstore_kernel_oracle.sh');
const SYSTEMD_PSTORE = '/usr/lib/systemd/systemd-pstore';

/**
 * Debian's 6.1 bzImage has init_size 0x3f98000: it decompresses over
 * 16 MiB..~80 MiB of the guest, and its initrd sits at the top of RAM, so
 * the region lives at 84 MiB of a 96 MiB machine (the smallest the guest boots in).
 */
const ADDR = 0x5400000;
const SIZE = 0x100000;
const RECORD = 0x4000;
const CONSOLE = 0x4000;

function cmdline(ecc: number): string {
  return `root=/dev/vda1 ro console=ttyS0,115200 panic=5 reboot=warm memmap=${SIZE >> 10}K$${ADDR >> 10}K ramoops.mem_address=0x${ADDR.toString(16)} ramoops.mem_size=0x${SIZE.toString(16)} ramoops.record_size=0x${RECORD.toString(16)} ramoops.console_size=0x${CONSOLE.toString(16)} ramoops.ecc=${ecc}`;
}

/** The files the oracle kernel printed: "ORACLE-FILE name size", the bytes, then a newline of its own. */
function oracleFiles(out: string): Map<string, string> {
  const files = new Map<string, string>();
  const re = /^ORACLE-FILE (\S+) (\d+)\n/gm;
  for (let m = re.exec(out); m; m = re.exec(out)) files.set(m[1], out.substr(m.index + m[0].length, Number(m[2])));
  return files;
}

interface Run { m: TempMachine; pre: string; ours: Map<string, string>; oracle: { status: number | null; out: string } | null }

const tmp = makeTempDir('pstore-interop');
const runs: TempMachine[] = [];

/**
 * A 96 MiB machine with ramoops: two oopses it survives and a panic; `edit`
 * may damage RAM just before the warm restart; then our kernel's files and,
 * unless skipped, the oracle's reading of the same RAM.
 */
function scenario(name: string, ecc: number, oracle: boolean, edit?: (sys: RunningSystem) => void): Run {
  const m = powerOnTemp({ mem: 96n * MiB, profile: 'idle', seed: 9, cmdline: cmdline(ecc) }, `pstore-${name}`);
  runs.push(m);
  kernelOops(m.sys.kernel);
  kernelOops(m.sys.kernel);
  const pre = path.join(tmp, `${name}.ram`);
  const out = crashMachine(m.sys, { kind: 'panic', message: `oracle ${name} panic` }, {
    beforeReboot: (s) => {
      edit?.(s);
      s.ram.flush();
      fs.copyFileSync(s.root.ramPath, pre);
    },
  });
  m.sys = out.system;
  const sysfs = new Sysfs(m.sys.kernel);
  const ours = new Map(pstoreFiles(m.sys.kernel).map((f) => [f.name, sysfs.read(`fs/pstore/${f.name}`).toString('latin1')]));
  const r = oracle ? runTool('bash', [ORACLE, pre, `0x${ADDR.toString(16)}`, `0x${SIZE.toString(16)}`, `0x${RECORD.toString(16)}`, `0x${CONSOLE.toString(16)}`, String(ecc)], 300) : null;
  return { m, pre, ours, oracle: r ? { status: r.status, out: r.stdout } : null };
}

afterAll(() => {
  for (const m of runs) m.destroy();
  removeTempDir(tmp);
});

const ORACLE_TOOLS = ['qemu-system-x86_64', 'bash', 'cpio', 'busybox'];

describe(`a real Linux kernel reads our ramoops region`, () => {
  const skip = skipWithout(ORACLE_TOOLS, { root: true }) || (!fs.existsSync(ORACLE) && process.env.LKCD_REQUIRE_TOOLS !== '1');
  let plain: Run;
  let ecc: Run;
  beforeAll(() => {
    if (skip) return;
    requireTools(ORACLE_TOOLS, { root: true });
    if (!fs.existsSync(ORACLE)) throw new Error(`${ORACLE} is missing`);
    plain = scenario('plain', 0, true);
    ecc = scenario('ecc', 1, true, (s) => {
      // Three bytes in one block of the first Oops record (zone 0, compressed): within what ECC corrects.
      const z0 = BigInt(ADDR) + 12n;
      for (const off of [130, 170, 200]) s.ram.write(z0 + BigInt(off), Buffer.from([s.ram.read(z0 + BigInt(off), 1)[0] ^ 0x01]));
      // Twelve bytes in one block of the console: beyond it. XOR 1 keeps the text free of carriage returns.
      const con = zoneTable({ mem_address: ADDR, mem_size: SIZE, record_size: RECORD, console_size: CONSOLE }).find((z) => z.kind === 'console')!;
      const consoleData = BigInt(con.paddr) + 12n;
      for (let i = 0; i < 12; i++) s.ram.write(consoleData + BigInt(256 + i * 7), Buffer.from([s.ram.read(consoleData + BigInt(256 + i * 7), 1)[0] ^ 0x01]));
    });
  }, 600_000);

  it.skipIf(skip)('without ECC: the same dmesg and console files, byte for byte (compressed records inflated by the kernel\'s deflate)', () => {
    expect(plain.oracle!.status, plain.oracle!.out.slice(-2000)).toBe(0);
    const theirs = oracleFiles(plain.oracle!.out);
    expect([...theirs.keys()].sort()).toEqual(['console-ramoops-0', 'dmesg-ramoops-0', 'dmesg-ramoops-1', 'dmesg-ramoops-2']);
    expect([...plain.ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [name, text] of theirs) expect(plain.ours.get(name), name).toBe(text);
    expect(theirs.get('dmesg-ramoops-2')).toMatch(/^Panic#3 Part1\n[\s\S]*Kernel panic - not syncing: oracle plain panic\n$/);
  });

  it.skipIf(skip)('with ECC and bit flips: the same corrected record, the same damaged console, the same notices', () => {
    expect(ecc.oracle!.status, ecc.oracle!.out.slice(-2000)).toBe(0);
    const theirs = oracleFiles(ecc.oracle!.out);
    expect([...ecc.ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [name, text] of theirs) expect(ecc.ours.get(name), name).toBe(text);
    expect(theirs.get('dmesg-ramoops-0')!.endsWith('\nECC: 3 Corrected bytes, 0 unrecoverable blocks\n')).toBe(true);
    expect(theirs.get('console-ramoops-0')!.endsWith('\nECC: 0 Corrected bytes, 1 unrecoverable blocks\n')).toBe(true);
    expect(theirs.get('dmesg-ramoops-1')!.endsWith('\nECC: No errors detected\n')).toBe(true);
  });
});

describe('systemd-pstore archives the exported files', () => {
  const skip = skipWithout([SYSTEMD_PSTORE]);
  it.skipIf(skip)('its dmesg.txt holds each dmesg record under the file\'s name, our panic log included, and it moves every file', () => {
    requireTools([SYSTEMD_PSTORE]);
    const run = scenario('systemd', 0, false);
    const src = path.join(tmp, 'export');
    const written = sysExport(new Sysfs(run.m.sys.kernel), 'fs/pstore', src);
    expect(written.map((f) => path.basename(f)).sort()).toEqual([...run.ours.keys()].sort());
    for (const f of written) expect(fs.statSync(f).mode & 0o777).toBe(0o444);
    const dst = path.join(tmp, 'archive');
    fs.mkdirSync(dst);
    const r = runTool(findTool(SYSTEMD_PSTORE)!, [path.join(src, 'fs', 'pstore'), dst]);
    expect(r.status, r.stderr).toBe(0);
    const dmesgTxt = fs.readFileSync(path.join(dst, 'dmesg.txt'), 'latin1');
    for (const [name, text] of run.ours) {
      if (!name.startsWith('dmesg-')) continue;
      expect(dmesgTxt).toContain(`${name}:\n${text}`);
    }
    expect(dmesgTxt).toContain('Kernel panic - not syncing: oracle systemd panic');
    for (const name of run.ours.keys()) expect(fs.readFileSync(path.join(dst, name), 'latin1')).toBe(run.ours.get(name));
    expect(fs.readdirSync(path.join(src, 'fs', 'pstore'))).toEqual([]);
  });
});
