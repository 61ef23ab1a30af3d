/**
 * pstore/ramoops on small machines, checked against truths the code under
 * test did not produce: the region decoded from the RAM image by a reader
 * written in the test from the layout facts (test/helpers/ramoops_decoder),
 * the machine's log text captured before the crash, bytes the test itself
 * wrote into device buffers, and RAM captured before stage 1.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  devcdDevices, inheritPersistentRamParams, kernelOops, pstoreFiles, Sysfs, systemDmesg, type RunningSystem,
} from '../../src/kernel/index.js';
import { coldReset, crashMachine, DUMP_LEVEL_ALL_RAM, type CrashOutcome } from '../../src/dump/index.js';
import { PciBus } from '../../src/machine/index.js';
import { decodeRecords, decodeZones, elfNotes, type RamoopsParamsForTest } from '../helpers/ramoops_decoder.js';
import { makeTempDir, MiB, powerOnTemp, removeTempDir, type TempMachine } from '../helpers/machine.js';
import { armAndLoad, loadKexec, procCmdline } from '../helpers/softboot.js';
import { findTool, runTool, skipWithout, requireTools } from '../helpers/tools.js';


const REGION = 0x1800000; // 24 MiB of a 32 MiB machine
const BASE_CMDLINE = 'root=/dev/vda1 ro console=ttyS0,115200 panic=5';

function cmdlineFor(p: RamoopsParamsForTest, extra = 'reboot=warm'): string {
  const reserve = p.mem_size + (p.devcoredump_size ?? 0);
  return [
    BASE_CMDLINE, extra, `memmap=${reserve >> 10}K$${p.mem_address >> 10}K`,
    `ramoops.mem_address=0x${p.mem_address.toString(16)}`, `ramoops.mem_size=0x${p.mem_size.toString(16)}`,
    `ramoops.record_size=0x${p.record_size.toString(16)}`, `ramoops.console_size=0x${p.console_size.toString(16)}`,
    p.ecc ? `ramoops.ecc=${p.ecc}` : '', p.devcoredump_size ? `ramoops.devcoredump_size=0x${p.devcoredump_size.toString(16)}` : '',
  ].filter((s) => s !== '').join(' ');
}

/** Three 4 KiB dmesg zones (24 KiB minus console, ftrace and pmsg), a 4 KiB console that wraps, a 64 KiB devcoredump zone. */
const SMALL: RamoopsParamsForTest = { mem_address: REGION, mem_size: 0x6000, record_size: 0x1000, console_size: 0x1000, devcoredump_size: 0x10000 };

interface Crashed {
  m: TempMachine;
  out: CrashOutcome;
  /** The RAM image right before the restart. */
  pre: string;
  /** `machine dmesg` right before the restart. */
  logBefore: string;
  files: Map<string, Buffer>;
}

const tmp = makeTempDir('pstore');
const machines: TempMachine[] = [];

function boot(name: string, cmdline: string, profile = 'idle'): TempMachine {
  const m = powerOnTemp({ mem: 32n * MiB, profile, seed: 4, cmdline }, `pstore-${name}`);
  machines.push(m);
  return m;
}

/** Panics, snapshots RAM and the log before the restart, lets `edit` change RAM then, and reads the new kernel's pstore files. */
function crash(m: TempMachine, name: string, message: string, edit?: (sys: RunningSystem) => void, extraHooks: Parameters<typeof crashMachine>[2] = {}): Crashed {
  const pre = path.join(tmp, `${name}.pre.ram`);
  let logBefore = '';
  const out = crashMachine(m.sys, { kind: 'panic', message }, {
    ...extraHooks,
    beforeReboot: (s) => {
      s.ram.flush();
      logBefore = systemDmesg(s);
      fs.copyFileSync(s.root.ramPath, pre);
      edit?.(s);
      s.ram.flush();
    },
  });
  m.sys = out.system;
  return { m, out, pre, logBefore, files: kernelFiles(out.system) };
}

function kernelFiles(sys: RunningSystem): Map<string, Buffer> {
  const sysfs = new Sysfs(sys.kernel);
  return new Map(pstoreFiles(sys.kernel).map((f) => [f.name, sysfs.read(`fs/pstore/${f.name}`)]));
}

const stripLevel = (s: string): string => s.replace(/^<\d>/gm, '');

afterAll(() => {
  for (const m of machines) m.destroy();
  removeTempDir(tmp);
});

describe('dmesg round-robin, the console ring, and what the next kernel exposes', () => {
  let c: Crashed;
  const oopsZones: Array<number | null> = [];
  beforeAll(() => {
    const m = boot('rr', cmdlineFor(SMALL));
    // Four oopses the kernel survives, then a panic: zones 0, 1, 2, 0, then 1.
    for (let i = 0; i < 4; i++) oopsZones.push(kernelOops(m.sys.kernel));
    c = crash(m, 'rr', 'pstore round robin');
  });

  it('writes dmesg records round-robin over the three zones, the newest overwriting the oldest', () => {
    expect(oopsZones).toEqual([0, 1, 2, 0]);
    expect(c.out.pstore.dmesgZone).toBe(1);
    expect(c.out.after).toBe('warm-reboot');
    const head = (n: string): string => c.files.get(n)!.toString('latin1').split('\n')[0];
    expect([head('dmesg-ramoops-0'), head('dmesg-ramoops-1'), head('dmesg-ramoops-2')]).toEqual(['Oops#4 Part1', 'Panic#5 Part1', 'Oops#3 Part1']);
  });

  it('the decoder written from the layout facts finds exactly the files the kernel exposes, byte for byte', () => {
    const decoded = decodeRecords(c.pre, SMALL);
    expect([...c.files.keys()].sort()).toEqual(decoded.map((d) => d.name).sort());
    for (const d of decoded) expect(c.files.get(d.name)!.equals(d.body), d.name).toBe(true);
    // The panic record was compressed in RAM ('C'), and inflated by the reading kernel.
    const z1 = decodeZones(c.pre, SMALL).find((z) => z.kind === 'dmesg' && z.index === 1)!;
    expect(z1.contents.subarray(0, 40).toString('latin1')).toMatch(/^====\d+\.\d{6}-C\n/);
  });

  it('the panic record holds the newest log lines as kmsg_dump_get_buffer(syslog) gives them', () => {
    const body = c.files.get('dmesg-ramoops-1')!.toString('latin1');
    expect(body).toMatch(/\n<0>\[\s*\d+\.\d{6}\] Kernel panic - not syncing: pstore round robin\n$/);
    const lines = stripLevel(body.slice(body.indexOf('\n') + 1));
    expect(c.logBefore.endsWith(lines)).toBe(true);
    expect(lines.split('\n').length).toBeGreaterThan(20);
  });

  it('the console zone wrapped: it holds exactly the last buffer-size bytes of the console output', () => {
    const con = decodeZones(c.pre, SMALL).find((z) => z.kind === 'console')!;
    expect(con.used).toBe(con.bufferSize);
    expect(con.start).toBeGreaterThan(0);
    expect(c.logBefore.length).toBeGreaterThan(con.bufferSize);
    expect(c.files.get('console-ramoops-0')!.toString('latin1')).toBe(c.logBefore.slice(-con.bufferSize));
  });

  it('files are mode 0444 with the record time as mtime; the console carries the mount time', () => {
    const decoded = new Map(decodeRecords(c.pre, SMALL).map((d) => [d.name, d]));
    for (const f of pstoreFiles(c.m.sys.kernel)) {
      expect(f.mode).toBe(0o444);
      const t = decoded.get(f.name)!.timeSec;
      if (t !== null) expect(Number(f.mtimeSec)).toBe(t);
      else expect(f.mtimeSec).toBeGreaterThan(BigInt(decoded.get('dmesg-ramoops-1')!.timeSec!));
    }
  });

  it('deleting a file frees the record: its zone is zapped in RAM and the file is gone', () => {
    const sysfs = new Sysfs(c.m.sys.kernel);
    sysfs.unlink('fs/pstore/dmesg-ramoops-2');
    c.m.sys.ram.flush();
    expect(pstoreFiles(c.m.sys.kernel).map((f) => f.name)).not.toContain('dmesg-ramoops-2');
    const z = decodeZones(c.m.sys.root.ramPath, SMALL).find((x) => x.kind === 'dmesg' && x.index === 2)!;
    expect([z.valid, z.used, z.start]).toEqual([true, 0, 0]);
  });
});

describe('the device-coredump frontend (the 2023 RFC, ours)', () => {
  let devcdElf = '';
  it('one ELF file per panic with an NT_VMCOREDD note per device, holding the registered buffers as they were at the panic', () => {
    const m = boot('devcd', cmdlineFor(SMALL));
    // Bytes only this test knows, written into each registered buffer just before the panic.
    const expected = new Map<string, Buffer>();
    for (const d of devcdDevices(m.sys.kernel)) {
      for (const r of d.regions.slice(0, d.nr_regions)) {
        if (r.type !== 1) continue;
        const pattern = Buffer.alloc(r.size, `${d.dump_name}/${r.name};`);
        m.sys.ram.write(r.addr, pattern);
        expected.set(`${d.dump_name}/${r.name}`, pattern);
      }
    }
    // The registers as the devices hold them when the notifier runs (after the host crash), read from the hardware.
    const regsAtPanic = new Map<string, Buffer>();
    const c = crash(m, 'devcd', 'device state at panic', undefined, {
      beforeDump: (s) => {
        for (const d of PciBus.open(s.root).devices()) regsAtPanic.set(d.bdf, Buffer.from(d.mem('bar0')));
      },
    });
    expect(c.out.pstore.devcd).toEqual({ dumped: ['cxgb4_0000:02:00.4', 'mpt3sas_0000:03:00.0', 'nvme_0000:04:00.0'], skipped: [] });
    const elf = c.files.get('devcoredump-ramoops-0')!;
    expect(decodeRecords(c.pre, SMALL).find((d) => d.name === 'devcoredump-ramoops-0')!.body.equals(elf)).toBe(true);
    const notes = elfNotes(elf);
    expect(notes.map((n) => [n.name, n.type])).toEqual([['LINUX', 0x700], ['LINUX', 0x700], ['LINUX', 0x700]]);
    for (const n of notes) {
      const dumpName = n.desc.subarray(0, 44).toString('latin1').replace(/\0+$/, '');
      // Regions: name[16], u32 type, u32 size, u64 addr, then the bytes padded to 8.
      let at = 44;
      const seen: string[] = [];
      while (at < n.desc.length) {
        const name = n.desc.subarray(at, at + 16).toString('latin1').replace(/\0+$/, '');
        const type = n.desc.readUInt32LE(at + 16);
        const size = n.desc.readUInt32LE(at + 20);
        const data = n.desc.subarray(at + 32, at + 32 + size);
        seen.push(name);
        if (type === 1) expect(data.equals(expected.get(`${dumpName}/${name}`)!), `${dumpName}/${name}`).toBe(true);
        else expect(data.equals(regsAtPanic.get(dumpName.slice(dumpName.lastIndexOf('_') + 1))!.subarray(0, size)), `${dumpName}/${name}`).toBe(true);
        at += 32 + Math.ceil(size / 8) * 8;
      }
      expect(seen).toEqual(['drv_log', 'regs']);
    }
    devcdElf = writeTmp('devcd.elf', elf);
  });

  it.skipIf(skipWithout(['readelf']))('readelf -n lists the three device notes as vmcoredd notes (LINUX, type 0x700)', () => {
    requireTools(['readelf']);
    const r = runTool(findTool('readelf')!, ['-n', devcdElf]);
    expect(r.status).toBe(0);
    expect(r.stdout.match(/LINUX\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000700\)/g)).toHaveLength(3);
  });

  it('a full zone: the device that does not fit is not dumped, one error line says so, and the dump stops there', () => {
    const p = { ...SMALL, devcoredump_size: 0x1000 };
    const m = boot('devcd-full', cmdlineFor(p));
    const c = crash(m, 'devcd-full', 'device zone full');
    expect(c.out.pstore.devcd).toEqual({ dumped: ['cxgb4_0000:02:00.4', 'mpt3sas_0000:03:00.0'], skipped: ['nvme_0000:04:00.0'] });
    const notes = elfNotes(c.files.get('devcoredump-ramoops-0')!);
    expect(notes.map((n) => n.desc.subarray(0, 44).toString('latin1').replace(/\0+$/, ''))).toEqual(['cxgb4_0000:02:00.4', 'mpt3sas_0000:03:00.0']);
    const errors = c.logBefore.split('\n').filter((l) => l.includes('devcoredump: no room'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/no room for nvme_0000:04:00.0 \(\d+ bytes, \d+ left in the devcoredump zone\): dump stopped, 1 device not dumped/);
    // The notifier runs before kmsg_dump: the panic record carries the error too.
    expect(c.files.get('dmesg-ramoops-0')!.toString('latin1')).toContain('devcoredump: no room for nvme_0000:04:00.0');
  });
});

function writeTmp(name: string, data: Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, data);
  return f;
}

describe('ECC: bit flips corrected, and beyond the code\'s reach reported, never silently wrong', () => {
  const p: RamoopsParamsForTest = { ...SMALL, ecc: 1 };
  let c: Crashed;
  let clean: string;
  let flipped: string;
  beforeAll(() => {
    const m = boot('ecc', cmdlineFor(p));
    clean = path.join(tmp, 'ecc.clean.ram');
    flipped = path.join(tmp, 'ecc.flipped.ram');
    c = crash(m, 'ecc', 'ecc test panic', (s) => {
      fs.copyFileSync(s.root.ramPath, clean);
      const dmesg0 = BigInt(REGION) + 12n;
      // Three bytes of one 128-byte block of the panic record (compressed data), and one byte of its header.
      for (const off of [260, 300, 383]) s.ram.write(dmesg0 + BigInt(off), Buffer.from([s.ram.read(dmesg0 + BigInt(off), 1)[0] ^ 0x5a]));
      s.ram.write(BigInt(REGION) + 9n, Buffer.from([s.ram.read(BigInt(REGION) + 9n, 1)[0] ^ 0x01]));
      // Twelve bytes of one block of the console: more than 16 parity bytes can repair.
      const con = BigInt(REGION) + 3n * 0x1000n + 12n;
      for (let i = 0; i < 12; i++) s.ram.write(con + BigInt(640 + i * 9), Buffer.from([s.ram.read(con + BigInt(640 + i * 9), 1)[0] ^ 0x20]));
      s.ram.flush();
      fs.copyFileSync(s.root.ramPath, flipped);
    });
  });

  it('the corrected record equals the record before the flips, and the notice counts header and data bytes', () => {
    const truth = decodeRecords(clean, p).find((d) => d.name === 'dmesg-ramoops-0')!;
    const file = c.files.get('dmesg-ramoops-0')!;
    expect(file.toString('latin1')).toBe(`${truth.body.toString('latin1')}\nECC: 4 Corrected bytes, 0 unrecoverable blocks\n`);
    expect(systemDmesg(c.m.sys)).toContain('ramoops: error in header, 1');
  });

  it('an unrecoverable block is kept as damaged and the file says so', () => {
    const truth = decodeRecords(clean, p).find((d) => d.name === 'console-ramoops-0')!.body.toString('latin1');
    const damaged = decodeRecords(flipped, p).find((d) => d.name === 'console-ramoops-0')!.body.toString('latin1');
    const file = c.files.get('console-ramoops-0')!.toString('latin1');
    expect(damaged).not.toBe(truth);
    expect(file).toBe(`${damaged}\nECC: 0 Corrected bytes, 1 unrecoverable blocks\n`);
  });

  it('untouched zones report no errors', () => {
    expect(c.files.get('devcoredump-ramoops-0')!.toString('latin1').endsWith('\nECC: No errors detected\n')).toBe(true);
  });
});

describe('what the reading kernel cannot inflate, and what max_reason leaves out', () => {
  it('a kernel booted with pstore.compress=none keeps a compressed record as dmesg-ramoops-N.enc.z, its bytes as stored', () => {
    const m = boot('encz', cmdlineFor(SMALL));
    const addr = armAndLoad(m.sys, DUMP_LEVEL_ALL_RAM, 2);
    // KEXEC_CMDLINE naming its own pstore.compress: inheritPersistentRamParams keeps it, so kernel 2 has no deflate.
    loadKexec(m.sys, inheritPersistentRamParams(`root=/dev/vda1 ro pstore.compress=none crashdump=0x${addr.toString(16)}`, procCmdline(m.sys)));
    const c = crash(m, 'encz', 'compressed, never inflated');
    expect(c.out.after).toBe('kexec');
    expect([...c.files.keys()].sort()).toEqual(['console-ramoops-0', 'devcoredump-ramoops-0', 'dmesg-ramoops-0.enc.z']);
    const z = decodeZones(c.pre, SMALL).find((x) => x.kind === 'dmesg' && x.index === 0)!;
    const header = /^====\d+\.\d{6}-C\n/.exec(z.contents.toString('latin1'))!;
    expect(c.files.get('dmesg-ramoops-0.enc.z')!.equals(z.contents.subarray(header[0].length))).toBe(true);
    expect(systemDmesg(c.m.sys)).toContain('pstore: no decompression method initialized!');
  });

  it('ramoops.max_reason=1 keeps panics only: an oops writes no record', () => {
    const m = boot('maxreason', `${cmdlineFor(SMALL)} ramoops.max_reason=1`);
    expect(kernelOops(m.sys.kernel)).toBeNull();
    const c = crash(m, 'maxreason', 'panics only');
    expect([...c.files.keys()].filter((n) => n.startsWith('dmesg')).map((n) => c.files.get(n)!.toString('latin1').split('\n')[0])).toEqual(['Panic#1 Part1']);
  });
});

describe('a corrupt header, power loss, a cold reboot', () => {
  it('a header whose size exceeds the buffer: the zone is zapped, one log line, no file', () => {
    const m = boot('hdr', cmdlineFor(SMALL));
    const c = crash(m, 'hdr', 'corrupt header panic', (s) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(0xffffffff);
      s.ram.write(BigInt(REGION) + 8n, b);
    });
    expect(c.files.has('dmesg-ramoops-0')).toBe(false);
    expect(c.files.has('console-ramoops-0')).toBe(true);
    const lines = systemDmesg(c.m.sys).split('\n').filter((l) => l.includes('found existing invalid buffer'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ramoops: found existing invalid buffer, size 4294967295, start \d+$/);
    c.m.sys.ram.flush();
    const z = decodeZones(c.m.sys.root.ramPath, SMALL).find((x) => x.kind === 'dmesg' && x.index === 0)!;
    expect([z.valid, z.used, z.start]).toEqual([true, 0, 0]);
  });

  it('power loss after the panic: the reset clears RAM and nothing is exposed', () => {
    const m = boot('power', cmdlineFor(SMALL));
    const c = crash(m, 'power', 'power loss panic');
    expect(c.files.size).toBeGreaterThan(0);
    m.sys = coldReset(m.sys);
    expect(pstoreFiles(m.sys.kernel)).toEqual([]);
    expect(new Sysfs(m.sys.kernel).list('fs/pstore')).toEqual([]);
    expect(systemDmesg(m.sys)).not.toMatch(/invalid buffer|error in header/);
    // In RAM now: only the console the new boot writes, nothing of the crashed one.
    m.sys.ram.flush();
    const left = decodeRecords(m.sys.root.ramPath, SMALL);
    expect(left.map((d) => d.name)).toEqual(['console-ramoops-0']);
    expect(left[0].body.toString('latin1')).not.toContain('power loss panic');
  });

  it('without reboot=warm the firmware restart after a panic is cold: the records are lost with RAM', () => {
    const m = boot('cold', cmdlineFor(SMALL, ''));
    const c = crash(m, 'cold', 'cold reboot panic');
    expect(c.out.after).toBe('cold-reboot');
    expect(decodeRecords(c.pre, SMALL).length).toBeGreaterThan(0);
    expect(c.files.size).toBe(0);
  });
});

describe('beside the LKCD soft-boot dump', () => {
  it('stage 1 never reuses the region\'s frames, even when it runs out of room, and the kexec\'d kernel, given the parameters, exposes the records', () => {
    // A 16 MiB region of a 32 MiB machine whose empty dmesg rings hold stale incompressible bytes:
    // saving it takes more room than there is, so stage 1 would reuse its frames if it could.
    const big: RamoopsParamsForTest = { mem_address: 12 << 20, mem_size: 16 << 20, record_size: 0x10000, console_size: 0x10000, devcoredump_size: 0x10000 };
    const m = boot('lkcd', cmdlineFor(big));
    for (const z of decodeZones(m.sys.root.ramPath, big).filter((x) => x.kind === 'dmesg')) {
      m.sys.ram.write(BigInt(z.paddr + 12), crypto.randomBytes(z.size - 12));
    }
    const region = { start: BigInt(big.mem_address), end: BigInt(big.mem_address + big.mem_size + big.devcoredump_size!) };
    const addr = armAndLoad(m.sys, DUMP_LEVEL_ALL_RAM, 2);
    // lkcd config's command line for the kexec kernel: KEXEC_CMDLINE, crashdump=, the persistent-RAM words.
    loadKexec(m.sys, inheritPersistentRamParams(`root=/dev/vda1 ro crashdump=0x${addr.toString(16)}`, procCmdline(m.sys)));
    let before: Buffer | null = null;
    let after: Buffer | null = null;
    const read = (s: RunningSystem): Buffer => s.ram.read(region.start, Number(region.end - region.start));
    const c = crash(m, 'lkcd', 'pstore beside lkcd', undefined, { beforeDump: (s) => { before = read(s); }, afterDump: (s) => { after = read(s); } });
    expect(c.out.after).toBe('kexec');
    expect(after!.equals(before!)).toBe(true);
    // Out of room, the dump says so (TRUNCATED) rather than take the region.
    expect(c.out.dump?.pagesSaved).toBeGreaterThan(0n);
    expect(c.out.dump?.truncated).toBe(true);
    expect(procCmdline(c.m.sys)).toContain(`ramoops.mem_address=0x${big.mem_address.toString(16)}`);
    const decoded = decodeRecords(c.pre, big);
    expect(decoded.map((d) => d.name).sort()).toEqual(['console-ramoops-0', 'devcoredump-ramoops-0', 'dmesg-ramoops-0']);
    expect([...c.files.keys()].sort()).toEqual(decoded.map((d) => d.name).sort());
    for (const d of decoded) expect(c.files.get(d.name)!.equals(d.body), d.name).toBe(true);
  });
});
