/**
 * Device dumps in the crash recovery kernel, end to end through the built
 * commands: the drivers of kdump's capture kernel and of LKCD's soft-boot
 * kernel 2 dump their devices before they reset them; /proc/vmcore carries
 * the dumps as NT_VMCOREDD notes before the CPU and VMCOREINFO notes; the
 * same bytes are /sys/kernel/crashdd files, kdumpctl's crashdd copy, and
 * LKCD's devices/ files and exported notes.
 *
 * Truths the code under test did not produce: each device's raw state
 * from `machine device --dump` before the crash (or after it, for the
 * wedged controller that ignores every write), decoded by decoders written
 * in the test from the formats' facts (test/helpers/device_decoders.ts);
 * crash's and readelf's own reading of the notes; vmcore-dmesg, makedumpfile
 * and libkdumpfile on the vmcore with the notes in place.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ensureBuilt, expectCleanFailure, expectOk, EX_DATAERR, EX_NOINPUT, EX_USAGE, runTool as run } from '../helpers/cli.js';
import { makeTempDir, MiB, removeTempDir } from '../helpers/machine.js';
import { LIBKDUMPFILE, needs, PYTHON, runTool } from '../helpers/tools.js';
import {
  crashDeviceDumps, decodeCudbg, decodeDeviceImage, decodeSimDump, elfCoreNotes, vmcoreddOf, type ImageRegion,
} from '../helpers/device_decoders.js';
import { kdumpMachine, loadPanicKernel } from '../helpers/kdump.js';
import { copyProcVmcore, crashMachine, elfVmcoreFormat, kdumpCompressedFormat, openDump } from '../../src/dump/index.js';
import { procVmcore, systemDmesg } from '../../src/kernel/index.js';

const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz-5.4.0-lkcd root=/dev/vda1 ro console=ttyS0,115200 panic=5';
const NIC = '0000:02:00.4';
const HBA = '0000:03:00.0';
const NVME = '0000:04:00.0';
const BDFS = [NIC, HBA, NVME];
const NAMES = ['cxgb4_0000:02:00.4', 'mpt3sas_0000:03:00.0', 'nvme_0000:04:00.0'];
const DRIVERS = ['cxgb4', 'mpt3sas', 'nvme'];
const PAGE = 4096;
/** CUDBG_CHUNK_SIZE: (CDUMP_MAX_COMP_BUF_SIZE / 1024) * 1024 with CDUMP_MAX_COMP_BUF_SIZE 64 KiB - 1. */
const CHUNK = 63 * 1024;

let dir: string;
beforeAll(() => { ensureBuilt(); dir = makeTempDir('devdumps'); });
afterAll(() => removeTempDir(dir));

/** `machine sys cat PATH`, its stdout as bytes (a crashdd file is binary). */
function sysCat(root: string, p: string): Buffer {
  const r = spawnSync(process.execPath, [BIN.machine, '--root', root, 'sys', 'cat', p], { maxBuffer: 64 << 20, timeout: 120_000, env: { ...process.env, LKCD_NO_PROGRESS: '1' } });
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

function deviceImage(root: string, bdf: string, name: string): { regions: Map<string, ImageRegion>; flags: number } {
  const file = path.join(dir, name);
  expectOk(run('machine', root, ['device', bdf, '--dump', '-o', file]));
  return decodeDeviceImage(fs.readFileSync(file));
}

/**
 * What cxgb4's dump must hold, from the NIC's raw state: the register file;
 * the device log where its registers say (0x28 start, 0x2c size); EDC0 with
 * every 63 KiB chunk that lies wholly in the Tx or Rx payload region zero
 * (payload base/size at 0x18/0x1c and 0x20/0x24).
 */
function expectedCxgb4(img: Map<string, ImageRegion>): { regs: Buffer; devlog: Buffer; edc0: Buffer; skipped: number } {
  const regs = img.get('bar0')!.bytes;
  const edc = img.get('edc0')!.bytes;
  const reg = (o: number): number => regs.readUInt32LE(o);
  const devlog = edc.subarray(reg(0x28), reg(0x28) + reg(0x2c));
  const edc0 = Buffer.from(edc);
  let skipped = 0;
  for (const [b, s] of [[reg(0x18), reg(0x1c)], [reg(0x20), reg(0x24)]]) {
    const start = Math.ceil(b / CHUNK) * CHUNK;
    const end = Math.floor((b + s) / CHUNK) * CHUNK;
    for (let c = start; c + CHUNK <= end; c += CHUNK) { edc0.fill(0, c, c + CHUNK); skipped++; }
  }
  return { regs, devlog, edc0, skipped };
}

function checkCxgb4(dump: Buffer, before: Map<string, ImageRegion>): void {
  const d = decodeCudbg(dump);
  // cudbg_hdr: CUDBG_SIGNATURE, hdr_len 56, version 1.14, MINI dump, zlib (2).
  expect([d.signature, d.hdrLen, d.major, d.minor, d.dumpType, d.compressType]).toEqual([67856866, 56, 1, 14, 1, 2]);
  const want = expectedCxgb4(before);
  expect(want.skipped).toBeGreaterThan(40);
  // Entity types: CUDBG_REG_DUMP 1, CUDBG_DEV_LOG 2, CUDBG_EDC0 18; EDC1 (19) absent: size 0, ENTITY_NOT_FOUND.
  expect(d.entities.get(1)!.data.equals(want.regs)).toBe(true);
  expect(d.entities.get(2)!.data.equals(want.devlog)).toBe(true);
  expect(d.entities.get(18)!.data.equals(want.edc0)).toBe(true);
  expect([d.entities.get(19)!.size, d.entities.get(19)!.flags]).toEqual([0, -24]);
  // The skipped payload is not what the device held there: zeros stand for it.
  expect(before.get('edc0')!.bytes.equals(want.edc0)).toBe(false);
  // data_len: everything written; the rest of the buffer is zero.
  expect(dump.subarray(d.dataLen).every((b) => b === 0)).toBe(true);
  expect(d.dataLen).toBeLessThan(dump.length / 10);
}

function checkSections(dump: Buffer, sections: Array<[string, Buffer]>): void {
  const got = decodeSimDump(dump);
  expect([...got.keys()]).toEqual(sections.map(([n]) => n));
  for (const [name, want] of sections) expect(got.get(name)!.equals(want), name).toBe(true);
}

function hbaSections(img: Map<string, ImageRegion>): Array<[string, Buffer]> {
  const mem = img.get('ioc_mem')!.bytes;
  return [['sysif_regs', img.get('bar0')!.bytes], ['request_queue', mem.subarray(0, 0x4000)], ['reply_queue', mem.subarray(0x4000, 0x4400)], ['ioc_log', mem.subarray(0x8000, 0xc000)]];
}

function nvmeSections(img: Map<string, ImageRegion>): Array<[string, Buffer]> {
  const bar = img.get('bar0')!.bytes;
  const cmb = img.get('cmb')!.bytes;
  return [['regs', bar.subarray(0, 0x40)], ['doorbells', bar.subarray(0x1000, 0x1010)], ['admin_sq', cmb.subarray(0, 0x800)], ['admin_cq', cmb.subarray(0x1000, 0x1200)],
    ['io_sq1', cmb.subarray(0x4000, 0x8000)], ['io_cq1', cmb.subarray(0x8000, 0x9000)], ['telemetry', cmb.subarray(0x2000, 0x4000)]];
}

const tools = needs('crash', 'readelf', 'makedumpfile', 'vmcore-dmesg', LIBKDUMPFILE);

describe(`kdump: the capture kernel's drivers dump their devices into /proc/vmcore${tools.reason}`, () => {
  let root: string;
  const before = new Map<string, Map<string, ImageRegion>>();
  let nvmeAfter: { regions: Map<string, ImageRegion>; flags: number };
  let vmcore: string;
  let captureLog: string;
  let lspciAfter: string;
  const crashdd = new Map<string, Buffer>();
  let saved: string;

  beforeAll(() => {
    if (tools.skip) return;
    root = path.join(dir, 'kdump');
    expectOk(run('machine', root, ['power-on', '--mem', '128M', '--profile', 'database', '--seed', '21', '--cmdline', `${CMDLINE} crashkernel=32M`]));
    // kdump-utils appends novmcoredd by default: this admin wants the device dumps.
    expectOk(run('kdumpctl', root, ['start']));
    const conf = path.join(root, 'etc', 'sysconfig', 'kdump');
    fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace('KDUMP_COMMANDLINE_APPEND="novmcoredd ', 'KDUMP_COMMANDLINE_APPEND="'));
    expect(expectOk(run('kdumpctl', root, ['restart']))).not.toContain('novmcoredd');
    expectOk(run('machine', root, ['run', '--seconds', '4']));
    BDFS.forEach((b, i) => before.set(b, deviceImage(root, b, `before-${i}`).regions));
    expectOk(run('machine', root, ['panic', 'device dump test']));
    captureLog = expectOk(run('machine', root, ['dmesg']));
    vmcore = path.join(dir, 'proc-vmcore');
    expectOk(run('machine', root, ['proc', 'vmcore', '-o', vmcore]));
    for (const [i, n] of NAMES.entries()) crashdd.set(n, sysCat(root, `kernel/crashdd/${DRIVERS[i]}/${n}`));
    nvmeAfter = deviceImage(root, NVME, 'nvme-after');
    lspciAfter = expectOk(run('machine', root, ['lspci']));
    const out = expectOk(run('kdumpctl', root, ['save']));
    saved = path.join(root, /^kdump: saving to (\/var\/crash\/[^\n]+)\/$/m.exec(out)![1]);
  }, 600_000);

  tools.it('crash -d 1 --osrelease lists the three dumps, names and sizes, on /proc/vmcore and on the kdump-compressed file makedumpfile wrote', () => {
    const sizes = [...crashdd.values()].map((b) => b.length);
    for (const f of [vmcore, path.join(saved, 'vmcore')]) {
      const r = runTool('crash', ['-d', '1', '--osrelease', f], 300);
      expect(r.stdout.trim().split('\n').pop()).toBe('5.4.0-lkcd');
      expect(crashDeviceDumps(r.stdout)).toEqual(NAMES.map((name, i) => ({ name, size: sizes[i] })));
    }
  });

  tools.it('readelf -n: three LINUX notes of type 0x700 (data size = dump + 44-byte dump_name), before CORE and VMCOREINFO', () => {
    const r = runTool('readelf', ['-n', '-W', vmcore], 120);
    const owners = [...r.stdout.matchAll(/^\s+(\S+)\s+0x([0-9a-f]+)\s+(.*)$/gm)].filter((m) => ['LINUX', 'CORE', 'VMCOREINFO'].includes(m[1]));
    expect(owners.map((m) => m[1])).toEqual(['LINUX', 'LINUX', 'LINUX', 'CORE', 'VMCOREINFO']);
    expect(owners.slice(0, 3).every((m) => m[3].startsWith('Unknown note type: (0x00000700)'))).toBe(true);
    expect(owners.slice(0, 3).map((m) => parseInt(m[2], 16))).toEqual([...crashdd.values()].map((b) => b.length + 44));
  });

  it('/proc/vmcore places them as fs/proc/vmcore.c does: one PT_NOTE at 0x1000, each dump a whole number of pages, the first data at 0x1040', () => {
    const buf = fs.readFileSync(vmcore);
    const { notes, ptNotes } = elfCoreNotes(buf);
    expect(ptNotes).toEqual([{ offset: 0x1000, filesz: expect.any(Number), index: 0 }]);
    const dd = vmcoreddOf(notes);
    expect(dd.map((d) => d.name)).toEqual(NAMES);
    expect(dd.every((d) => d.note.namesz === 8 && (12 + 8 + d.note.desc.length) % PAGE === 0)).toBe(true);
    expect(dd[0].note.descOffset + 44).toBe(0x1040);
    // p_filesz counts the dumps and the real size of the other notes; the CPU and VMCOREINFO notes follow the dumps.
    const last = notes[notes.length - 1];
    expect(ptNotes[0].filesz).toBe(last.descOffset + Math.ceil(last.desc.length / 4) * 4 - 0x1000);
  });

  it('each dump\'s bytes are the same in the note, the crashdd file and kdumpctl\'s crashdd copy beside the vmcore (0600 in 0700)', () => {
    const dd = vmcoreddOf(elfCoreNotes(fs.readFileSync(vmcore)).notes);
    for (const [i, d] of dd.entries()) {
      const copy = path.join(saved, 'crashdd', DRIVERS[i], d.name);
      expect(d.data.equals(crashdd.get(d.name)!), d.name).toBe(true);
      expect(fs.readFileSync(copy).equals(d.data), copy).toBe(true);
      expect(fs.statSync(copy).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.dirname(copy)).mode & 0o777).toBe(0o700);
    }
    expect(fs.readdirSync(saved).sort()).toEqual(['crashdd', 'vmcore', 'vmcore-dmesg.txt']);
  });

  it('the cxgb4 dump decompresses to the NIC as it was before the crash (registers, device log, EDC0 less its payload chunks)', () => {
    checkCxgb4(crashdd.get(NAMES[0])!, before.get(NIC)!);
  });

  it('the HBA dump holds its registers and command queue as before the crash, requests in flight included; its driver reset the queue after', () => {
    const want = hbaSections(before.get(HBA)!);
    expect(want[1][1].some((b) => b !== 0)).toBe(true);
    checkSections(crashdd.get(NAMES[1])!, want);
    expect(captureLog).toMatch(/mpt3sas_cm0: .*; \d+ requests outstanding, discarded by the reset\n/);
  });

  it('the wedged NVMe controller: its dump is taken (CSTS 0x3: ready, fatal status), its reset times out and is logged after, lspci says it is wedged', () => {
    const dump = crashdd.get(NAMES[2])!;
    checkSections(dump, nvmeSections(nvmeAfter.regions));
    expect(decodeSimDump(dump).get('regs')!.readUInt32LE(0x1c)).toBe(0x3);
    expect(nvmeAfter.flags & 1).toBe(1);
    const lines = captureLog.split('\n');
    const fail = lines.findIndex((l) => /\] nvme nvme0: Device not ready; aborting reset$/.test(l));
    expect(fail).toBeGreaterThan(0);
    expect(lines[fail + 1]).toMatch(/\] nvme nvme0: Removing after probe failure status: -19$/);
    expect(lspciAfter).toMatch(/^0000:04:00\.0 Non-Volatile memory controller \[0108\]: .*\n\tState: wedged/m);
  });

  tools.it('the memory dump is whole with the notes in place: vmcore-dmesg, makedumpfile --dump-dmesg and libkdumpfile read /proc/vmcore', () => {
    const log = runTool('vmcore-dmesg', [vmcore], 120);
    expect(log.status).toBe(0);
    expect(log.stdout).toMatch(/Kernel panic - not syncing: device dump test\n$/);
    const txt = path.join(dir, 'mdf-dmesg.txt');
    const m = runTool('makedumpfile', ['--dump-dmesg', vmcore, txt], 300);
    expect(m.status, m.stderr).toBe(0);
    expect(fs.readFileSync(txt, 'latin1')).toBe(log.stdout);
    const py = runTool(PYTHON, ['-c', "import sys, kdumpfile; k = kdumpfile.kdumpfile(sys.argv[1]); print(k.attr['linux.vmcoreinfo.lines']['OSRELEASE'])", vmcore], 120);
    expect(py.stdout.trim()).toBe('5.4.0-lkcd');
    expect(fs.readFileSync(path.join(saved, 'vmcore-dmesg.txt'), 'latin1')).toBe(log.stdout);
  });

  it('our readers find the same dumps in /proc/vmcore and in the kdump-compressed file', () => {
    for (const f of [vmcore, path.join(saved, 'vmcore')]) {
      const d = openDump(f, {}, [elfVmcoreFormat, kdumpCompressedFormat]);
      try {
        const dd = d.deviceDumps!();
        expect(dd.map((x) => x.name)).toEqual(NAMES);
        for (const x of dd) expect(Buffer.from(x.data()).equals(crashdd.get(x.name)!)).toBe(true);
      } finally { d.close(); }
    }
  });
});

describe('kdumpctl\'s default command line has novmcoredd: no dump, one line', () => {
  it('the capture kernel logs "Device dump is disabled" once; /proc/vmcore has no LINUX notes; there is no crashdd', () => {
    const root = path.join(dir, 'novmcoredd');
    expectOk(run('machine', root, ['power-on', '--mem', '128M', '--profile', 'idle', '--seed', '3', '--cmdline', `${CMDLINE} crashkernel=32M`]));
    expectOk(run('kdumpctl', root, ['start']));
    expectOk(run('machine', root, ['panic', 'novmcoredd']));
    const log = expectOk(run('machine', root, ['dmesg']));
    expect(log.match(/Device dump is disabled/g)).toHaveLength(1);
    // cxgb4 warns as upstream does, with -EINVAL; the others the same way.
    expect(log.match(/Fail collecting vmcore device dump, err: -22\. Continuing/g)).toHaveLength(3);
    const vm = path.join(dir, 'novmcoredd-vmcore');
    expectOk(run('machine', root, ['proc', 'vmcore', '-o', vm]));
    expect(vmcoreddOf(elfCoreNotes(fs.readFileSync(vm)).notes)).toEqual([]);
    expect(run('machine', root, ['sys', 'ls', 'kernel/crashdd']).status).toBe(EX_NOINPUT);
  });
});

describe('a dump too big for the capture kernel\'s memory fails alone', () => {
  it('crashkernel=6M: cxgb4\'s 4 MiB buffer cannot be allocated (logged), the HBA and NVMe dumps are added, /proc/vmcore reads', () => {
    const m = kdumpMachine({ mem: 128n * MiB, crashkernel: '6M', profile: 'idle', seed: 5 }, 'devdump-small');
    try {
      loadPanicKernel(m.sys, 'console=ttyS0,115200 irqpoll nr_cpus=1 reset_devices');
      const out = crashMachine(m.sys, { kind: 'panic', message: 'too small' });
      m.sys = out.system;
      expect(out.after).toBe('kdump');
      const log = systemDmesg(m.sys).split('\n');
      const fail = log.findIndex((l) => /\] swapper\/0: vmalloc: allocation failure: \d+ bytes/.test(l));
      expect(fail).toBeGreaterThan(0);
      expect(log[fail + 1]).toMatch(/\] cxgb4 0000:02:00\.4: Fail collecting vmcore device dump, err: -12\. Continuing$/);
      // The NIC itself was still brought up: only its dump failed.
      expect(log.slice(fail + 2).join('\n')).toContain('cxgb4 0000:02:00.4: Coming up as MASTER');
      expect(procVmcore(m.sys.kernel)!.vmcoreddSize).toBeGreaterThan(0);
      const vm = path.join(dir, 'small-vmcore');
      copyProcVmcore(m.sys.kernel, vm);
      expect(vmcoreddOf(elfCoreNotes(fs.readFileSync(vm)).notes).map((d) => d.name)).toEqual(NAMES.slice(1));
    } finally {
      m.destroy();
    }
  });
});

describe(`LKCD soft boot: kernel 2's drivers dump, lkcd config carries the dumps, lkcd save keeps them${needs('crash', 'readelf').reason}`, () => {
  let root: string;
  const before = new Map<string, Map<string, ImageRegion>>();
  const crashdd = new Map<string, Buffer>();
  let exported: string;
  let lsTop: string;
  let lsNvme: string;

  beforeAll(() => {
    root = path.join(dir, 'softboot');
    expectOk(run('machine', root, ['power-on', '--mem', '128M', '--profile', 'database', '--seed', '8']));
    expectOk(run('lkcd', root, ['config']));
    expectOk(run('machine', root, ['run', '--seconds', '3']));
    BDFS.forEach((b, i) => before.set(b, deviceImage(root, b, `sb-before-${i}`).regions));
    expect(expectOk(run('machine', root, ['panic', 'soft boot device dumps']))).toMatch(/saved dump reserved at/);
    for (const [i, n] of NAMES.entries()) crashdd.set(n, sysCat(root, `kernel/crashdd/${DRIVERS[i]}/${n}`));
    lsTop = expectOk(run('machine', root, ['sys', 'ls', 'kernel/crashdd']));
    lsNvme = expectOk(run('machine', root, ['sys', 'ls', 'kernel/crashdd/nvme']));
    expectOk(run('lkcd', root, ['config']));
    const saved = expectOk(run('lkcd', root, ['save']));
    expect(saved).toMatch(/^lkcd save: dump 0 carries 3 device dumps, saved in .*\/log\/dump\/0\/devices: cxgb4_0000:02:00\.4 \(\d+ bytes\), mpt3sas_0000:03:00\.0 \(\d+ bytes\), nvme_0000:04:00\.0 \(\d+ bytes\)$/m);
    exported = path.join(dir, 'sb-export.elf');
    expectOk(run('lkcd', root, ['export', '0', '--elf', '-o', exported]));
  }, 600_000);

  it('lkcd devices lists them (name, driver, size); --extract gives each one\'s bytes, equal to the crashdd file and the exported note', () => {
    const rows = JSON.parse(expectOk(run('lkcd', root, ['devices', '0', '--json']))) as Array<{ name: string; driver: string; size: number; file: string }>;
    expect(rows.map((r) => [r.name, r.driver, r.size, r.file])).toEqual(NAMES.map((n, i) => [n, DRIVERS[i], crashdd.get(n)!.length, `devices/${n}`]));
    expect(expectOk(run('lkcd', root, ['devices', '0']))).toMatch(/^NAME +DRIVER +SIZE +SHA256 +FILE\ncxgb4_0000:02:00\.4 +cxgb4 +\d+ +[0-9a-f]{16} +devices\/cxgb4_0000:02:00\.4\n/);
    const notes = vmcoreddOf(elfCoreNotes(fs.readFileSync(exported)).notes);
    for (const n of NAMES) {
      const f = path.join(dir, `extract-${n}`);
      expect(expectOk(run('lkcd', root, ['devices', '0', '--extract', n, '-o', f]))).toBe(`${f}: ${crashdd.get(n)!.length} bytes\n`);
      const bytes = fs.readFileSync(f);
      expect(bytes.equals(crashdd.get(n)!), n).toBe(true);
      expect(notes.find((x) => x.name === n)!.data.equals(bytes)).toBe(true);
      expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    }
  });

  it('crashdd: one read-only file per dump (0400), sized as the dump, in a directory per driver; gone once lkcd config wrote them out', () => {
    expect(lsTop).toMatch(/^d\S+ +0 .* cxgb4\/\nd\S+ +0 .* mpt3sas\/\nd\S+ +0 .* nvme\/\n$/);
    expect(lsNvme).toMatch(new RegExp(`^-r-------- +${crashdd.get(NAMES[2])!.length} .* nvme_0000:04:00\\.0\n$`));
    expectCleanFailure(run('machine', root, ['sys', 'ls', 'kernel/crashdd']), 'machine', EX_NOINPUT, '/sys/kernel/crashdd');
  });

  it('the cxgb4 dump kernel 2 took decodes to the NIC before the crash; the HBA\'s to its state before the crash', () => {
    checkCxgb4(crashdd.get(NAMES[0])!, before.get(NIC)!);
    checkSections(crashdd.get(NAMES[1])!, hbaSections(before.get(HBA)!));
  });

  needs('crash', 'readelf').it('lkcd export --elf: crash -d 1 lists the dumps; readelf -n shows them before CORE and VMCOREINFO', () => {
    const r = runTool('crash', ['-d', '1', '--osrelease', exported], 300);
    expect(crashDeviceDumps(r.stdout)).toEqual(NAMES.map((name) => ({ name, size: crashdd.get(name)!.length })));
    const re = runTool('readelf', ['-n', '-W', exported], 120);
    const owners = [...re.stdout.matchAll(/^\s+(\S+)\s+0x([0-9a-f]+)\s+(.*)$/gm)].filter((m) => ['LINUX', 'CORE', 'VMCOREINFO'].includes(m[1]));
    expect(owners.map((m) => m[1])).toEqual(['LINUX', 'LINUX', 'LINUX', 'CORE', 'VMCOREINFO']);
  });

  it('lkcd devices fails in one line: an unknown name (66), --extract without -o (64), a saved copy altered since (65); lkcd reindex keeps the list', () => {
    expectCleanFailure(run('lkcd', root, ['devices', '0', '--extract', 'nope', '-o', path.join(dir, 'x')]), 'lkcd', EX_NOINPUT, "no device dump 'nope'", NAMES[0]);
    expectCleanFailure(run('lkcd', root, ['devices', '0', '--extract', NAMES[1]]), 'lkcd', EX_USAGE, '-o FILE');
    expectCleanFailure(run('lkcd', root, ['devices', '7']), 'lkcd', EX_NOINPUT, 'no dump 7');
    const copy = path.join(root, 'log', 'dump', '0', 'devices', NAMES[2]);
    const good = fs.readFileSync(copy);
    const bad = Buffer.from(good);
    bad[100] ^= 0xff;
    fs.writeFileSync(copy, bad);
    expectCleanFailure(run('lkcd', root, ['devices', '0', '--extract', NAMES[2], '-o', path.join(dir, 'y')]), 'lkcd', EX_DATAERR, copy, 'no longer matches the index');
    fs.writeFileSync(copy, good);
    expectOk(run('lkcd', root, ['reindex']));
    expect((JSON.parse(expectOk(run('lkcd', root, ['devices', '0', '--json']))) as unknown[]).length).toBe(3);
    expect(expectOk(run('lkcd', root, ['verify', '0']))).toMatch(/^dump 0: \d+ pages verified .*checksums match, sha256 matches\n$/);
  });
});
