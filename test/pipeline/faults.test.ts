/**
 * Faults around the soft boot (DESIGN section 3 "boot", section 5 invariant 3):
 * a crashdump= that is missing, misaligned, out of range, not a direct-map
 * address, points at a corrupt block, or at a block holding no dump is
 * logged once and ignored, and the machine boots; a second panic before the
 * dump is written out keeps the first dump; a panic with no kexec kernel
 * loaded reboots cold and the new log says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  closeSystem, forEachPageType, MemMap, openSystem, PAGE_OFFSET, powerOn, runWorkload, systemDmesg, systemStatus,
  type RunningSystem,
} from '../../src/kernel/index.js';
import {
  armDump, crashMachine, InplaceDump, kexecReboot, liveDump, pendingDump, procDumpValues, readBlock, savedDumpFrames,
  dump_config_block, DUMP_COMPRESS_GZIP, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_SOFTBOOT, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_USED,
} from '../../src/dump/index.js';
import { changedFrames, frameHashes, hashOf, pageHash } from '../helpers/ramdiff.js';
import { makeTempDir, MiB, removeTempDir } from '../helpers/machine.js';
import { armAndLoad, hexs, invariant1, invariant3, loadKexec, pa, procCmdline, takeSnapshot, type Snapshot } from '../helpers/softboot.js';

const dirs: string[] = [];
const open: RunningSystem[] = [];
afterAll(() => {
  for (const s of open) { try { closeSystem(s); } catch { /* already closed */ } }
  for (const d of dirs) removeTempDir(d);
});

function machine(prefix: string, mem: bigint, profile: string, seed: number): RunningSystem {
  const dir = makeTempDir(prefix);
  dirs.push(dir);
  const sys = powerOn(new MachineRoot(dir), { mem, profile, seed });
  open.push(sys);
  return sys;
}

const IGNORING = /crashdump: .*\. Ignoring dump$/gm;

interface BadArg {
  /** The crashdump= argument (text after '='), from the armed block's address. */
  arg: (addr: bigint, ram: bigint) => string;
  /** What the one log line must say. */
  reason: RegExp;
  /**
   * How the machine gets there: 'kexec -e' reboots into the loaded kernel with no dump taken
   * (the block is merely armed); 'sysrq-d' saves a live dump first; 'panic' crashes (stage 1, then kexec).
   */
  via: 'kexec -e' | 'sysrq-d' | 'panic';
  /** Flips a byte of the saved block before the reboot: its CRC32 no longer matches. */
  corruptBlock?: boolean;
}

const badArgs: Array<[string, BadArg]> = [
  ['missing value', { arg: () => '', reason: /crashdump= is not an address/, via: 'kexec -e' }],
  ['misaligned', { arg: (a) => hexs(a + 8n), reason: /crashdump=0x[0-9a-f]+ is not page aligned/, via: 'kexec -e' }],
  ['out of range', { arg: (_a, ram) => hexs(PAGE_OFFSET + 2n * ram), reason: /crashdump=0x[0-9a-f]+ is not a direct-mapped address of this machine's RAM/, via: 'kexec -e' }],
  ['not a direct-map address', { arg: () => '0x1234', reason: /crashdump=0x1234 is not a direct-mapped address/, via: 'kexec -e' }],
  ['corrupt block checksum after Alt+SysRq+d', { arg: (a) => hexs(a), reason: /invalid dump at 0x[0-9a-f]+: .*checksum/, via: 'sysrq-d', corruptBlock: true }],
  ['corrupt block checksum after a panic', { arg: (a) => hexs(a), reason: /invalid dump at 0x[0-9a-f]+: .*checksum/, via: 'panic', corruptBlock: true }],
  ['block ARMED, no dump taken', { arg: (a) => hexs(a), reason: /holds no saved dump \(state 1\)/, via: 'kexec -e' }],
];

/** Flips one byte of the block's panic string, as a stray write would. */
function corrupt(sys: RunningSystem, blockPhys: bigint): void {
  const at = blockPhys + BigInt(dump_config_block.offsetOf.panic_string);
  const b = sys.ram.read(at, 1);
  sys.ram.write(at, Buffer.from([b[0] ^ 0x01]));
  sys.ram.flush();
}

describe.each(badArgs)('a bad crashdump= (%s) is logged and ignored; the machine boots', (name, bad) => {
  let sys: RunningSystem;
  let root: MachineRoot;

  beforeAll(() => {
    sys = machine('baddump', 16n * MiB, 'idle', 31);
    root = sys.root;
    const { addr, blockPhys } = armDump(sys.kernel, {
      active: true, level: DUMP_LEVEL_ALL_RAM, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress: DUMP_COMPRESS_GZIP, panicTimeout: 5,
    });
    loadKexec(sys, `root=/dev/vda1 ro crashdump=${bad.arg(addr, sys.ram.size)}`);
    if (bad.via === 'panic') {
      const out = crashMachine(sys, { kind: 'panic', message: `bad crashdump= ${name}` }, {
        afterDump: (x) => { if (bad.corruptBlock) corrupt(x, blockPhys); },
      });
      expect(out.dump).not.toBeNull();
      expect(out.after).toBe('kexec');
      sys = out.system;
    } else {
      if (bad.via === 'sysrq-d') expect(liveDump(sys).dump.pagesSaved).toBeGreaterThan(0n);
      if (bad.corruptBlock) corrupt(sys, blockPhys);
      sys = kexecReboot(sys);
    }
    open.push(sys);
  });

  it('boots, logs exactly one "Ignoring dump" line naming the reason, and holds no pending dump', () => {
    expect(procCmdline(sys)).toContain('crashdump=');
    const log = systemDmesg(sys);
    const lines = log.match(IGNORING) ?? [];
    expect(lines, log).toHaveLength(1);
    expect(lines[0]).toMatch(bad.reason);
    expect(pendingDump(sys.kernel)).toBeNull();
    expect(procDumpValues(sys.kernel).addr).toBe('0x0');
  });

  it('reopens as a running machine that can be armed again', () => {
    closeSystem(sys);
    sys = openSystem(root);
    open.push(sys);
    const st = systemStatus(sys);
    expect(st.ram_bytes).toBe(16n * MiB);
    expect(st.pages.free).toBeGreaterThan(0n);
    const again = armDump(sys.kernel, {
      active: true, level: DUMP_LEVEL_ALL_RAM, flags: DUMP_FLAGS_SOFTBOOT, compress: DUMP_COMPRESS_GZIP, panicTimeout: 5,
    });
    expect(again.created).toBe(true);
  });
});

describe('a second panic before the dump is written out', () => {
  let addr: bigint;
  let blockPhys: bigint;
  let snap!: Snapshot;
  let firstPages: Map<bigint, string>;
  let firstFrames: bigint[];
  let afterFirstBoot: Buffer;
  let second!: ReturnType<typeof crashMachine>;
  let atSecondCrash!: Buffer;
  let afterSecondStage1!: Buffer;
  let sys: RunningSystem;

  beforeAll(() => {
    sys = machine('second', 32n * MiB, 'database', 32);
    addr = armAndLoad(sys, DUMP_LEVEL_ALL_RAM, DUMP_COMPRESS_GZIP);
    blockPhys = pa(addr);
    const first = crashMachine(sys, { kind: 'panic', message: 'first panic' }, { beforeDump: (x) => { snap = takeSnapshot(x, blockPhys); } });
    expect(first.dump).not.toBeNull();
    expect(first.after).toBe('kexec');
    sys = first.system;
    open.push(sys);
    afterFirstBoot = frameHashes(sys.ram);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    firstPages = new Map(dump.pages().map((pfn) => [pfn, pageHash(dump.readPage(pfn)).toString('hex')]));
    dump.close();
    firstFrames = savedDumpFrames(sys.ram, blockPhys, readBlock(sys.ram, blockPhys));

    // The new kernel runs a while, then the admin re-runs the kexec preload with the pending address.
    runWorkload(sys, 3);
    const pendingAddr = procDumpValues(sys.kernel).addr;
    expect(pendingAddr).toBe(hexs(addr));
    loadKexec(sys, `root=/dev/vda1 ro crashdump=${pendingAddr}`);
    second = crashMachine(sys, { kind: 'panic', message: 'second panic' }, {
      beforeDump: (x) => { atSecondCrash = frameHashes(x.ram); },
      afterDump: (x) => { afterSecondStage1 = frameHashes(x.ram); },
    });
    sys = second.system;
    open.push(sys);
  });

  it('the first boot found the dump, and it holds what RAM held before the first panic', () => {
    expect(firstPages.size).toBeGreaterThan(0);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      expect(invariant1(dump, snap)).toEqual([]);
    } finally {
      dump.close();
    }
  });

  it('stage 1 does not run the second time: no new dump, the reason is the pending dump, RAM unchanged by the crash path', () => {
    expect(second.dump).toBeNull();
    expect(second.noDumpReason).toMatch(/still awaits writeout/);
    expect(second.console.join('\n')).toMatch(/dump: a dump from the previous boot at 0x[0-9a-f]+ still awaits writeout/);
    expect(changedFrames(atSecondCrash, afterSecondStage1)).toEqual([]);
  });

  it('the second boot finds the same dump, page for page', () => {
    expect(second.after).toBe('kexec');
    expect(pendingDump(sys.kernel)?.addr).toBe(addr);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      const now = new Map(dump.pages().map((pfn) => [pfn, pageHash(dump.readPage(pfn)).toString('hex')]));
      expect(now.size).toBe(firstPages.size);
      const differ = [...firstPages].filter(([pfn, h]) => now.get(pfn) !== h).map(([pfn]) => hexs(pfn));
      expect(differ).toEqual([]);
    } finally {
      dump.close();
    }
  });

  it('no frame of the dump changed from the first boot through the second panic and boot', () => {
    const nowHashes = frameHashes(sys.ram);
    expect(invariant3(sys.ram, blockPhys, afterFirstBoot, nowHashes)).toEqual([]);
    const frames = new Set(firstFrames);
    expect(new Set(savedDumpFrames(sys.ram, blockPhys, readBlock(sys.ram, blockPhys)))).toEqual(frames);
  });
});

describe('a panic with no kexec kernel loaded', () => {
  let sys: RunningSystem;
  let out!: ReturnType<typeof crashMachine>;
  let anonPfn = -1n;
  let anonHash: string;
  let blockPhys: bigint;
  let before: Buffer;

  beforeAll(() => {
    sys = machine('cold', 32n * MiB, 'database', 33);
    const armed = armDump(sys.kernel, {
      active: true, level: DUMP_LEVEL_USED, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress: DUMP_COMPRESS_GZIP, panicTimeout: 5,
    });
    blockPhys = armed.blockPhys;
    sys.ram.flush();
    before = frameHashes(sys.ram);
    const zero = pageHash(Buffer.alloc(Number(PAGE_SIZE_N))).toString('hex');
    // A database buffer page (anonymous, non-zero) high in RAM, far from any boot region.
    forEachPageType(new MemMap(sys.kernel), (pfn, t) => {
      if (t === 'anon' && pfn * PAGE_SIZE_N > sys.ram.size / 2n && hashOf(before, pfn).toString('hex') !== zero) anonPfn = pfn;
    });
    anonHash = hashOf(before, anonPfn).toString('hex');
    out = crashMachine(sys, { kind: 'panic', message: 'panic without kexec' });
    sys = out.system;
    open.push(sys);
  });

  it('reboots cold, and the new kernel\'s log says why', () => {
    expect(out.after).toBe('cold-reboot');
    expect(out.console.join('\n')).toMatch(/Rebooting: panic .*no kexec image loaded/);
    expect(systemDmesg(sys)).toMatch(/reboot: cold boot after panic.*no kexec image loaded; memory contents were lost/);
    expect(pendingDump(sys.kernel)).toBeNull();
  });

  it('RAM was cleared: the old workload\'s pages and the dump config block are gone', () => {
    expect(anonPfn).toBeGreaterThan(0n);
    const after = frameHashes(sys.ram);
    expect(hashOf(after, anonPfn).toString('hex')).not.toBe(anonHash);
    expect(() => readBlock(sys.ram, blockPhys)).toThrow(/magic|checksum|state/);
    // Most frames differ from the old machine's: nothing of it survived as such.
    expect(changedFrames(before, after).length).toBeGreaterThan(Number(sys.ram.size / PAGE_SIZE_N) / 2);
  });

  it('the machine runs again after the cold boot', () => {
    closeSystem(sys);
    sys = openSystem(sys.root);
    open.push(sys);
    expect(systemStatus(sys).ram_bytes).toBe(32n * MiB);
  });
});
