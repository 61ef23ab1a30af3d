/**
 * The fault matrix of the soft-boot pipeline (DESIGN sections 3 and 5,
 * invariant 1: nothing lost silently). Each row drives the built commands
 * (`machine`, `lkcd`, `kexec`) on a 16 MiB machine, with library steps only
 * where a fault must be placed in RAM between two commands (the crash hooks
 * give the ground truth: RAM just before the panic), and ends with nothing
 * lost or with a loss the machine records: a log line naming the reason, a
 * TRUNCATED dump whose missing list names exactly the lost pages, or a
 * one-line error with its sysexits status.
 *
 *   1. power loss (cold reset) between the panic and the writeout
 *   2. bits flipped in the saved dump's frames (page data, page record
 *      headers, the dump header's frame)
 *   3. a second panic in the new kernel before the writeout
 *   4. a dump device failing part-way, and one too small; a panic after such
 *      a cut-short writeout, before the retry
 *   5. DUMPDIR full during lkcd save
 *   6. stale, foreign and garbage dump devices; a wrong crashdump=; a config
 *      block failing its checksum; a missing or corrupt kexec image
 */
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE_N, type PhysicalRam } from '../../src/machine/index.js';
import { closeSystem, openSystem, systemDmesg, type RunningSystem } from '../../src/kernel/index.js';
import {
  crashMachine, dump_config_block, dump_header, dump_page, InplaceDump, lkcd_missing_range, openLkcdFile, pendingDump,
  procDumpValues, readBlock, savedDumpFrames, DUMP_BUFFER_SIZE, DUMP_HEADER_OFFSET, DUMP_MASK_UNUSED, DUMP_MASK_USED,
  DUMP_PASS_KERN, DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_STATE_SAVED, type Memdev, type PageRecord,
} from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { frameHashes, hashOf, pageHash } from '../helpers/ramdiff.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { hexs, pa, takeSnapshot, type Snapshot } from '../helpers/softboot.js';
import {
  ensureBuilt, expectCleanFailure, okRun, runTool, EX_DATAERR, EX_IOERR, EX_NOINPUT,
} from '../helpers/cli.js';

/** Exit statuses of a degraded result (src/cli/exit.ts). */
const DUMP_TRUNCATED = 3;
const DEVICE_IO = 5;

/**
 * A command whose work is done but whose dump is degraded: exit `status`,
 * its normal output on stdout, then exactly one stderr line naming `names`.
 * Returns stdout.
 */
function degradedRun(tool: 'lkcd', dir: string, args: string[], status: number, names: string[], env: Record<string, string> = {}): string {
  const r = runTool(tool, dir, args, env);
  expectCleanFailure(r, tool, status, ...names);
  return r.stdout;
}

const dirs: string[] = [];
beforeAll(() => ensureBuilt());
afterAll(() => { for (const d of dirs) removeTempDir(d); });

// ---- machines, paths and output lines -----------------------------------------------------

const KEXEC_CMDLINE = 'root=/dev/vda1 ro console=ttyS0,115200';
const IGNORING = /crashdump: .*\. Ignoring dump$/gm;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sortPfns = (xs: Iterable<bigint>): bigint[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** A machine root: the directory and the paths the default etc/sysconfig/dump names inside it. */
interface Root { dir: string; dev: string; dumpdir: string; release: string; image: string }

/** Powers on a fresh 16 MiB machine with `machine power-on` in its own temporary root. */
function powerOnRoot(prefix: string, profile: string, seed: number): Root {
  const dir = makeTempDir(`fm-${prefix}`);
  dirs.push(dir);
  okRun('machine', dir, ['power-on', '--mem', '16M', '--profile', profile, '--seed', String(seed)]);
  const vmlinuz = fs.readdirSync(path.join(dir, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  expect(vmlinuz).toBeDefined();
  return {
    dir, dev: path.join(dir, 'dev', 'vmdump'), dumpdir: path.join(dir, 'log', 'dump'),
    release: vmlinuz!.slice('vmlinuz-'.length), image: path.join(dir, 'boot', vmlinuz!),
  };
}

/**
 * Checks the two lines with which `lkcd config` arms the driver and preloads
 * kexec (the last two of its output); returns the config block's address.
 */
function expectArmed(r: Root, out: string[], created: boolean): string {
  expect(out.length, out.join('\n')).toBeGreaterThanOrEqual(2);
  const [arm, preload] = out.slice(-2);
  const m = new RegExp(`^dump: ${created ? 'configured' : 'reconfigured'}: level 0xf, flags 0x80000002, compress 2; config block at (0x[0-9a-f]+)$`).exec(arm);
  expect(m, arm).not.toBeNull();
  expect(preload).toBe(`Preloading kernel for kexec based dumping: ${r.release} --command-line="${KEXEC_CMDLINE} crashdump=${m![1]}"`);
  return m![1];
}

/** `lkcd config` on a machine with no dump pending: exactly the two arming lines. */
function lkcdConfigArms(r: Root, created = true): string {
  const out = lines(okRun('lkcd', r.dir, ['config']));
  expect(out, out.join('\n')).toHaveLength(2);
  return expectArmed(r, out, created);
}

/** The one line `lkcd config` prints for a writeout, as a regex. */
function wroteLine(r: Root, addr: string, tail: string): RegExp {
  return new RegExp(`^dump: wrote the dump saved before the soft boot at ${addr} to ${esc(r.dev)}: (\\d+) pages, (\\d+) bytes${tail}$`);
}

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** What DUMPDIR holds, sorted (dump directories, bounds, index files, leftovers). */
function dumpdirEntries(r: Root): string[] {
  return fs.existsSync(r.dumpdir) ? fs.readdirSync(r.dumpdir).sort() : [];
}

/** Dump numbers indexed, from `lkcd list --json`. */
function listed(r: Root): Array<{ n: number; pages: number; complete: boolean; missing_pages: number; panic_string: string }> {
  return JSON.parse(okRun('lkcd', r.dir, ['list', '--json'])) as Array<{ n: number; pages: number; complete: boolean; missing_pages: number; panic_string: string }>;
}

/** The index's missing list of dump n, as pfns. */
function indexMissing(r: Root, n: number): bigint[] {
  const index = DumpIndex.open(r.dumpdir, { readonly: true });
  try {
    // The dumper's own frames are listed too, but they are not missing.
    return expand(index.missing(n).filter((m) => m.reason !== 'dumper').map((m) => [m.start_pfn, m.end_pfn]));
  } finally {
    index.close();
  }
}

/** The reasons the index gives for dump n's missing ranges (the dumper's own frames left out). */
function indexReasons(r: Root, n: number): string[] {
  const index = DumpIndex.open(r.dumpdir, { readonly: true });
  try {
    return [...new Set(index.missing(n).map((m) => m.reason ?? 'unspecified').filter((x) => x !== 'dumper'))].sort();
  } finally {
    index.close();
  }
}

function expand(ranges: Array<[bigint, bigint]>): bigint[] {
  const out: bigint[] = [];
  for (const [a, b] of ranges) for (let p = a; p < b; p++) out.push(p);
  return sortPfns(out);
}

// ---- the crash with hooks, and what stage 1 saved ----------------------------------------

/** What stage 1 left in memory: every saved page's record and pass, the pages it lists missing, bytes per pass. */
interface Stage1 {
  addr: string;
  blockPhys: bigint;
  pages: bigint[];
  records: Map<bigint, PageRecord>;
  missing: bigint[];
  /** Record bytes of each pass (kern, user, unused), as stage 2 writes them. */
  passBytes: [bigint, bigint, bigint];
}

function readStage1(ram: PhysicalRam, addr: bigint): Stage1 {
  const blockPhys = pa(addr);
  const d = InplaceDump.open(ram, blockPhys);
  try {
    const records = new Map(d.pages().map((pfn) => [pfn, d.record(pfn)!]));
    const passBytes: [bigint, bigint, bigint] = [0n, 0n, 0n];
    for (const s of d.segments) passBytes[s.pass] += s.end - s.start;
    return { addr: hexs(addr), blockPhys, pages: sortPfns(d.pages()), records, missing: expand(d.missingRanges()), passBytes };
  } finally {
    d.close();
  }
}

interface HookedCrash {
  snap: Snapshot;
  stage1: Stage1;
  console: string[];
}

/**
 * `machine panic` in-process, for the hooks: the ground truth is taken at
 * beforeDump; `beforeBoot` runs after stage 1 (RAM as the crashed kernel
 * left it), `afterBoot` in the new kernel; then the machine is closed for the
 * commands that follow.
 */
function crashWithHooks(r: Root, message: string, hooks: {
  beforeBoot?: (sys: RunningSystem, s: Stage1) => void;
  afterBoot?: (sys: RunningSystem, s: Stage1) => void;
} = {}, reserves = true, panicCodec?: 'gzip'): HookedCrash {
  // A test that sizes the device from stage 1's pass bytes needs them to be the device's: deflated at panic.
  const codecBefore = process.env.LKCD_PANIC_CODEC;
  if (panicCodec) process.env.LKCD_PANIC_CODEC = panicCodec;
  try {
    return crashWithHooksNow(r, message, hooks, reserves);
  } finally {
    if (codecBefore === undefined) delete process.env.LKCD_PANIC_CODEC;
    else process.env.LKCD_PANIC_CODEC = codecBefore;
  }
}

function crashWithHooksNow(r: Root, message: string, hooks: {
  beforeBoot?: (sys: RunningSystem, s: Stage1) => void;
  afterBoot?: (sys: RunningSystem, s: Stage1) => void;
}, reserves: boolean): HookedCrash {
  const sys = openSystem(new MachineRoot(r.dir));
  let after: RunningSystem | null = null;
  try {
    const addr = BigInt(procDumpValues(sys.kernel).addr);
    expect(addr).not.toBe(0n);
    let snap!: Snapshot;
    let stage1!: Stage1;
    const out = crashMachine(sys, { kind: 'panic', message }, {
      beforeDump: (x) => { snap = takeSnapshot(x, pa(addr)); },
      afterDump: (x) => {
        stage1 = readStage1(x.ram, addr);
        hooks.beforeBoot?.(x, stage1);
        x.ram.flush();
      },
    });
    after = out.system;
    expect(out.dump).not.toBeNull();
    expect(out.after).toBe('kexec');
    if (reserves) expect(pendingDump(after.kernel)?.addr).toBe(addr);
    hooks.afterBoot?.(after, stage1);
    after.ram.flush();
    return { snap, stage1, console: out.console };
  } finally {
    closeSystem(after ?? sys);
  }
}

/** Flips `mask` in the byte at logical offset `at` of the memdev; returns its physical address. */
function flipMemdevByte(ram: PhysicalRam, memdev: Memdev, at: bigint, mask: number): bigint {
  const phys = memdev.lookup(at / PAGE_SIZE_N) * PAGE_SIZE_N + at % PAGE_SIZE_N;
  const b = ram.read(phys, 1);
  ram.write(phys, Buffer.from([b[0] ^ mask]));
  return phys;
}

/** The saved page in the middle of pass `pass` (records in stream order) whose data holds at least 8 bytes. */
function middlePageOf(s: Stage1, pass: number): bigint {
  const inPass = [...s.records].filter(([, rec]) => rec.pass === pass && rec.size >= 8).sort((a, b) => (a[1].offset < b[1].offset ? -1 : 1));
  expect(inPass.length, `pass ${pass} has saved pages`).toBeGreaterThan(2);
  return inPass[Math.floor(inPass.length / 2)][0];
}

/** The saved dump.N read against the ground truth: its pages, those that differ, its missing list. */
function readSaved(r: Root, n: number, snap: Snapshot): { pages: bigint[]; differ: string[]; missing: bigint[]; truncated: boolean } {
  const d = openLkcdFile(path.join(r.dumpdir, String(n), `dump.${n}`));
  try {
    const pages = sortPfns(d.pages());
    const differ = pages.filter((pfn) => !pageHash(d.readPage(pfn)).equals(hashOf(snap.hashes, pfn))).map(hexs);
    return { pages, differ, missing: expand(d.missingRanges()), truncated: d.attrs['dump.truncated'] };
  } finally {
    d.close();
  }
}

/** `lkcd save` that saves dump n; returns the matched line's pages and bytes. */
function expectSaved(r: Root, n: number, panic: string, state: string): { pages: number } {
  // A TRUNCATED dump is saved whole, and the exit status says it is TRUNCATED (after the save's line).
  const out = lines(state.startsWith('TRUNCATED')
    ? degradedRun('lkcd', r.dir, ['save'], DUMP_TRUNCATED, [`dump ${n} is TRUNCATED`])
    : okRun('lkcd', r.dir, ['save']))
    // The device dumps kernel 2's drivers took are reported on a line of their own (see device_dumps.test.ts).
    .filter((l) => !/^lkcd save: dump \d+ carries \d+ device dumps?, saved in /.test(l));
  expect(out, out.join('\n')).toHaveLength(1);
  const m = new RegExp(`^lkcd save: saved dump ${n} to ${esc(path.join(r.dumpdir, String(n)))}: (\\d+) pages, (\\d+) bytes, ${esc(state)}; panic "${esc(panic)}"$`).exec(out[0]);
  expect(m, out[0]).not.toBeNull();
  return { pages: Number(m![1]) };
}

function expectVerified(r: Root, n: number, pages: number, truncated: boolean): void {
  const out = truncated
    ? degradedRun('lkcd', r.dir, ['verify', String(n)], DUMP_TRUNCATED, [`dump ${n} is TRUNCATED`])
    : okRun('lkcd', r.dir, ['verify', String(n)]);
  expect(out).toMatch(new RegExp(`^dump ${n}: ${pages} pages verified \\(\\d+ compressed, \\d+ raw\\), checksums match, sha256 matches${truncated ? '; TRUNCATED dump: \\d+ pages missing' : ''}\n$`));
}

// ---- 1. power loss between the panic and the writeout ------------------------------------

describe('1. power loss (cold reset) after the panic, before the writeout', () => {
  let r: Root;
  let addr: string;
  let reset: string;
  let rearmed: string;

  beforeAll(() => {
    r = powerOnRoot('reset', 'idle', 101);
    addr = lkcdConfigArms(r);
    const panic = okRun('machine', r.dir, ['panic', 'lost to a power cut']);
    expect(panic).toMatch(new RegExp(`^kexec: booted \\S+; saved dump reserved at ${addr}$`, 'm'));
    reset = okRun('machine', r.dir, ['reset']);
  });

  it('the reset boots the same command line on cleared memory', () => {
    expect(reset).toBe(`reset: ${r.release} booted on cleared memory\n`);
    expect(okRun('machine', r.dir, ['proc', 'cmdline'])).toBe(`${KEXEC_CMDLINE} crashdump=${addr}\n`);
  });

  it('the new boot logs exactly one "Ignoring dump" line naming the reason (the block\'s magic is gone), and reserves nothing', () => {
    const log = okRun('machine', r.dir, ['dmesg']);
    const ignoring = log.match(IGNORING) ?? [];
    expect(ignoring, log).toHaveLength(1);
    expect(ignoring[0]).toMatch(new RegExp(`^crashdump: invalid dump at ${addr}: invalid dump magic 0x[0-9a-f]+ at ${hexs(pa(BigInt(addr)))}\\. Ignoring dump$`));
    expect(log).not.toMatch(/Dump may be available from previous boot/);
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      expect(pendingDump(sys.kernel)).toBeNull();
    } finally {
      closeSystem(sys);
    }
  });

  it('boots normally: status works, nothing armed or loaded until lkcd config', () => {
    expect(okRun('machine', r.dir, ['status'])).toMatch(new RegExp(`^kernel: +Linux ${esc(r.release)} on lkcd-sim`, 'm'));
    expect(okRun('machine', r.dir, ['proc', 'sys/kernel/dump/addr'])).toBe('0x0\n');
    expect(okRun('machine', r.dir, ['proc', 'sys/kernel/kexec_loaded'])).toBe('0\n');
  });

  it('lkcd config arms normally and finds nothing to write out; lkcd save says there is no dump', () => {
    rearmed = lkcdConfigArms(r);
    expect(okRun('machine', r.dir, ['proc', 'sys/kernel/kexec_loaded'])).toBe('1\n');
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: no dump on ${r.dev}\n`);
    expect(dumpdirEntries(r).filter((e) => /^\d+$/.test(e) || e === 'bounds' || e.startsWith('.saving'))).toEqual([]);
  });

  it('the next crash is dumped and saved whole', () => {
    const out = okRun('machine', r.dir, ['panic', 'after the power cut']);
    expect(out).toMatch(/^dump: saved (\d+) pages/m);
    const saved = Number(/^dump: saved (\d+) pages/m.exec(out)![1]);
    const cfg = lines(okRun('lkcd', r.dir, ['config']));
    expect(cfg, cfg.join('\n')).toHaveLength(3);
    expect(cfg[0]).toMatch(wroteLine(r, rearmed, ''));
    expect(expectSaved(r, 0, 'after the power cut', 'complete').pages).toBe(saved);
  });
});

// ---- 2. bit flips in the saved dump's frames ---------------------------------------------

interface FlipCase {
  /** When the bits flip: between stage 1 and the kexec boot, or in the new kernel before lkcd config. */
  when: 'before the boot' | 'after the boot';
  /** Logical offset (in the memdev) and mask of the byte to flip in a record, per pass. */
  flip: (rec: PageRecord) => { at: bigint; mask: number };
}

/** Logical offset of a record's field, and of its data. */
const fieldAt = (rec: PageRecord, field: keyof typeof dump_page.offsetOf): bigint => rec.offset + BigInt(dump_page.offsetOf[field]);
const dataAt = (rec: PageRecord): bigint => rec.offset + BigInt(dump_page.size);

const flipCases: Array<[string, FlipCase[]]> = [
  ['page data in three frames (a kern, a user and an unused page), between the panic and the boot', [0, 1, 2].map(() => ({
    when: 'before the boot' as const,
    flip: (rec: PageRecord) => ({ at: dataAt(rec) + BigInt(Math.min(3, rec.size - 1)), mask: 0x04 }),
  }))],
  ['page record headers (dp_address of a kern page, dp_size of a user page, dp_flags of an unused page), after the boot', [
    // Bit 12 of dp_address (another page), bit 0 of dp_size, bit 3 of dp_flags.
    { when: 'after the boot', flip: (rec) => ({ at: fieldAt(rec, 'dp_address') + 1n, mask: 0x10 }) },
    { when: 'after the boot', flip: (rec) => ({ at: fieldAt(rec, 'dp_size'), mask: 0x01 }) },
    { when: 'after the boot', flip: (rec) => ({ at: fieldAt(rec, 'dp_flags'), mask: 0x08 }) },
  ]],
];

describe.each(flipCases)('2. bits flipped in the saved dump: %s', (name, flips) => {
  let r: Root;
  let crash: HookedCrash;
  let damaged: bigint[] = [];
  let config: string[];
  let saved: number;

  beforeAll(() => {
    r = powerOnRoot('flip', 'idle', name.startsWith('page data') ? 102 : 103);
    lkcdConfigArms(r);
    const damage = (sys: RunningSystem, s: Stage1): void => {
      const d = InplaceDump.open(sys.ram, s.blockPhys);
      try {
        damaged = [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED].map((pass, i) => {
          const pfn = middlePageOf(s, pass);
          const { at, mask } = flips[i].flip(s.records.get(pfn)!);
          flipMemdevByte(sys.ram, d.memdev, at, mask);
          return pfn;
        });
      } finally {
        d.close();
      }
    };
    crash = crashWithHooks(r, `bit flips: ${name}`, flips[0].when === 'before the boot' ? { beforeBoot: damage } : { afterBoot: damage });
    expect(damaged).toHaveLength(3);
    config = lines(degradedRun('lkcd', r.dir, ['config'], DUMP_TRUNCATED, ['TRUNCATED: 3 pages missing']));
  });

  it('stage 1 saved every selected page (so any page missing later is a damaged one)', () => {
    expect(crash.stage1.missing).toEqual([]);
    expect(crash.stage1.pages.length).toBeGreaterThan(1000);
  });

  it('the writeout names exactly the damaged pages (paddr, in write order) and writes every other page', () => {
    expect(config, config.join('\n')).toHaveLength(4);
    const m = wroteLine(r, crash.stage1.addr, '; TRUNCATED: 3 pages missing').exec(config[0]);
    expect(m, config[0]).not.toBeNull();
    expect(Number(m![1])).toBe(crash.stage1.pages.length - 3);
    expect(config[1]).toBe(`dump: 3 pages were damaged in memory since the panic and not written (paddr ${damaged.map((p) => hexs(p * PAGE_SIZE_N)).join(', ')}); all other pages were`);
    expectArmed(r, config, true);
  });

  it('lkcd save saves a TRUNCATED dump that verifies; show, list and the index name exactly the damaged pages missing', () => {
    saved = expectSaved(r, 0, `bit flips: ${name}`, 'TRUNCATED (3 pages missing)').pages;
    expect(saved).toBe(crash.stage1.pages.length - 3);
    expectVerified(r, 0, saved, true);
    expect(okRun('lkcd', r.dir, ['show', '0'])).toMatch(/^ *complete: no: TRUNCATED, 3 pages missing$/m);
    const [rec] = listed(r);
    expect(rec).toMatchObject({ n: 0, pages: saved, complete: false, missing_pages: 3 });
    expect(indexMissing(r, 0)).toEqual(sortPfns(damaged));
    expect(indexReasons(r, 0)).toEqual(['damaged-in-memory']);
  });

  it('dump.0 holds every other saved page, each equal to RAM just before the panic, and lists the damaged ones missing', () => {
    const d = readSaved(r, 0, crash.snap);
    const gone = new Set(damaged);
    expect(d.pages).toEqual(crash.stage1.pages.filter((p) => !gone.has(p)));
    expect(d.differ).toEqual([]);
    expect(d.truncated).toBe(true);
    expect(d.missing).toEqual(sortPfns(damaged));
  });

  it('the frames were released: no dump pending, the driver re-armed', () => {
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      expect(pendingDump(sys.kernel)).toBeNull();
    } finally {
      closeSystem(sys);
    }
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: the dump on ${r.dev} was already saved as 0\n`);
  });
});

describe('2. a bit flipped in the frame holding the saved dump\'s header (dh_dump_compress, dh_panic_string), between the panic and the boot', () => {
  const message = 'header frame flip';
  let r: Root;
  let crash: HookedCrash;
  let config: string[];
  let save: ReturnType<typeof runTool>;

  beforeAll(() => {
    r = powerOnRoot('hdrflip', 'idle', 114);
    lkcdConfigArms(r);
    crash = crashWithHooks(r, message, {
      beforeBoot: (sys, s) => {
        const d = InplaceDump.open(sys.ram, s.blockPhys);
        try {
          // The header is the first bytes of the memdev's logical space (dump_header, then dump_header_asm).
          flipMemdevByte(sys.ram, d.memdev, BigInt(dump_header.offsetOf.dh_dump_compress), 0x01);
          flipMemdevByte(sys.ram, d.memdev, BigInt(dump_header.offsetOf.dh_panic_string), 0x01);
        } finally {
          d.close();
        }
      },
    });
    config = lines(okRun('lkcd', r.dir, ['config']));
    save = runTool('lkcd', r.dir, ['save']);
  });

  it('the writeout names the damaged header, or nothing is lost (the saved dump has every page and the right panic string)', () => {
    const recorded = config.some((l) => /^dump: .*header.*damaged|^dump: .*damaged.*header/.test(l));
    let whole = false;
    if (save.status === 0) {
      const d = readSaved(r, 0, crash.snap);
      whole = d.pages.length === crash.stage1.pages.length && d.differ.length === 0 && listed(r)[0]?.panic_string === message;
    }
    expect(recorded || whole, `lkcd config said:\n${config.join('\n')}\nlkcd save exited ${save.status}: ${save.stdout}${save.stderr}`).toBe(true);
  });
});

// ---- 3. a second panic before the writeout -----------------------------------------------

describe('3. a second panic in the new kernel before the writeout', () => {
  let r: Root;
  let crash: HookedCrash;
  let dumpFrames: bigint[];
  let frameHashesAfterBoot: Buffer;
  let second: string;

  beforeAll(() => {
    r = powerOnRoot('second', 'idle', 104);
    lkcdConfigArms(r);
    crash = crashWithHooks(r, 'first panic', {
      afterBoot: (sys, s) => {
        dumpFrames = savedDumpFrames(sys.ram, s.blockPhys, readBlock(sys.ram, s.blockPhys));
        frameHashesAfterBoot = frameHashes(sys.ram);
      },
    });
    okRun('machine', r.dir, ['run', '--seconds', '3']);
    // The admin re-runs the kexec preload with the pending address, as /proc shows it.
    const pendingAddr = okRun('machine', r.dir, ['proc', 'sys/kernel/dump/addr']).trim();
    expect(pendingAddr).toBe(crash.stage1.addr);
    const load = okRun('kexec', r.dir, ['-l', r.image, `--command-line=${KEXEC_CMDLINE} crashdump=${pendingAddr}`]);
    expect(load).toMatch(new RegExp(`^kexec: loaded ${esc(r.release)} .* command line "${esc(KEXEC_CMDLINE)} crashdump=${pendingAddr}"$`, 'm'));
    second = okRun('machine', r.dir, ['panic', 'second panic']);
  });

  it('the second panic keeps the pending dump (no new dump) and the next boot reserves it again', () => {
    expect(second).toContain(`dump: a dump from the previous boot at ${crash.stage1.addr} still awaits writeout; it is kept, no new dump is taken\n`);
    expect(second).not.toMatch(/^dump: saved/m);
    expect(second).toMatch(new RegExp(`^kexec: booted ${esc(r.release)}; saved dump reserved at ${crash.stage1.addr}$`, 'm'));
    const log = okRun('machine', r.dir, ['dmesg']);
    expect(log.match(IGNORING) ?? []).toEqual([]);
    expect(log).toMatch(new RegExp(`Dump may be available from previous boot: ${crash.stage1.pages.length} pages in ${dumpFrames.length} frames at ${crash.stage1.addr}$`, 'm'));
  });

  it('no frame of the dump changed between the first boot and the writeout', () => {
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      const now = frameHashes(sys.ram);
      const changed = dumpFrames.filter((pfn) => !hashOf(now, pfn).equals(hashOf(frameHashesAfterBoot, pfn))).map(hexs);
      expect(changed).toEqual([]);
    } finally {
      closeSystem(sys);
    }
  });

  it('lkcd config writes the first dump out whole; lkcd save saves it complete, every page equal to RAM before the first panic', () => {
    const out = lines(okRun('lkcd', r.dir, ['config']));
    expect(out, out.join('\n')).toHaveLength(3);
    const m = wroteLine(r, crash.stage1.addr, '').exec(out[0]);
    expect(m, out[0]).not.toBeNull();
    expect(Number(m![1])).toBe(crash.stage1.pages.length);
    expectArmed(r, out, true);
    expect(expectSaved(r, 0, 'first panic', 'complete').pages).toBe(crash.stage1.pages.length);
    expectVerified(r, 0, crash.stage1.pages.length, false);
    const d = readSaved(r, 0, crash.snap);
    expect(d.pages).toEqual(crash.stage1.pages);
    expect(d.differ).toEqual([]);
    expect(d.missing).toEqual([]);
    const dmesg = okRun('lkcd', r.dir, ['dmesg', '0']);
    expect(dmesg).toContain('Kernel panic - not syncing: first panic');
    expect(dmesg).not.toContain('second panic');
  });
});

// ---- 4. a failing and a too-small dump device --------------------------------------------

interface DeviceCase {
  /** How the device fails: I/O errors from an offset, or a size below the dump's. */
  kind: 'eio' | 'small';
  seed: number;
}

const deviceCases: Array<[string, DeviceCase]> = [
  ['I/O errors from an offset inside the dump (LKCD_FAULT_DEVICE_EIO_FROM)', { kind: 'eio', seed: 105 }],
  ['a device smaller than the dump', { kind: 'small', seed: 106 }],
];

describe.each(deviceCases)('4. the dump device fails part-way: %s', (_name, c) => {
  let r: Root;
  let crash: HookedCrash;
  /** The device offset writes fail from, or the device's size. */
  let limit: bigint;
  let fullSize: bigint;
  let first: string[];
  let truncatedPages: number;

  beforeAll(() => {
    r = powerOnRoot(`dev-${c.kind}`, 'idle', c.seed);
    lkcdConfigArms(r);
    fullSize = BigInt(fs.statSync(r.dev).size);
    crash = crashWithHooks(r, `device fault ${c.kind}`, {}, true, 'gzip');
    // Half-way through the user pass: every kernel page fits before the limit, not every user page.
    const [kern, user] = crash.stage1.passBytes;
    limit = DUMP_HEADER_OFFSET + BigInt(DUMP_BUFFER_SIZE) + kern + user / 2n;
    if (c.kind === 'small') fs.truncateSync(r.dev, Number(limit));
    const env: Record<string, string> = c.kind === 'eio' ? { LKCD_FAULT_DEVICE_EIO_FROM: String(limit) } : {};
    // The writeout is done as far as the device allows; the exit status says how it ended.
    first = lines(c.kind === 'eio'
      ? degradedRun('lkcd', r.dir, ['config'], DEVICE_IO, ['failed during the writeout', 'TRUNCATED'], env)
      : degradedRun('lkcd', r.dir, ['config'], DUMP_TRUNCATED, ['TRUNCATED'], env));
  });

  it('the whole dump would not fit below the limit; every kernel page would', () => {
    const [kern, user, unused] = crash.stage1.passBytes;
    // Stage 2 keeps room for the END record and a missing-ranges trailer of up to one range per unwritten page.
    expect(user / 2n).toBeGreaterThan(BigInt(lkcd_missing_range.size) * BigInt(crash.stage1.pages.length + 64));
    expect(DUMP_HEADER_OFFSET + BigInt(DUMP_BUFFER_SIZE) + kern + user + unused).toBeGreaterThan(limit);
    expect(crash.stage1.missing).toEqual([]);
  });

  it('lkcd config writes a TRUNCATED dump and says the frames stay in memory for a retry', () => {
    // Not re-armed while the dump is held: the last line preloads kexec with the held dump's address.
    const expected = c.kind === 'eio' ? 4 : 3;
    expect(first, first.join('\n')).toHaveLength(expected);
    const m = wroteLine(r, crash.stage1.addr, '(?: \\(resumed\\))?; TRUNCATED: (\\d+) pages missing').exec(first[0]);
    expect(m, first[0]).not.toBeNull();
    truncatedPages = Number(m![1]);
    expect(truncatedPages + Number(m![3])).toBe(crash.stage1.pages.length);
    expect(BigInt(m![2])).toBeLessThanOrEqual(limit);
    let i = 1;
    if (c.kind === 'eio') expect(first[i++]).toBe(`dump: ${r.dev}: input/output error writing at offset ${limit}; the dump on the device ends before it`);
    expect(first[i++]).toBe(`dump: the device could not hold the whole dump: its frames stay reserved in memory; run lkcd config again once ${r.dev} is mended or larger`);
    expect(first[i]).toBe(`Preloading kernel for kexec based dumping: ${r.release} --command-line="${KEXEC_CMDLINE} crashdump=${crash.stage1.addr}" (the held dump)`);
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      expect(hexs(pendingDump(sys.kernel)!.addr)).toBe(crash.stage1.addr);
      expect(readBlock(sys.ram, crash.stage1.blockPhys).state).toBe(DUMP_STATE_SAVED);
    } finally {
      closeSystem(sys);
    }
  });

  it('the first writeout is reported as a writeout, not as "(resumed)"', () => {
    expect(first[0]).not.toContain('(resumed)');
  });

  it('lkcd save saves the TRUNCATED dump: every kernel page present, only user and unused pages missing, each listed', () => {
    expect(expectSaved(r, 0, `device fault ${c.kind}`, `TRUNCATED (${crash.stage1.pages.length - truncatedPages} pages missing)`).pages).toBe(truncatedPages);
    expectVerified(r, 0, truncatedPages, true);
    const d = readSaved(r, 0, crash.snap);
    expect(d.differ).toEqual([]);
    const present = new Set(d.pages);
    const kernMissing = crash.stage1.pages.filter((p) => crash.stage1.records.get(p)!.pass === DUMP_PASS_KERN && !present.has(p)).map(hexs);
    expect(kernMissing).toEqual([]);
    const notSaved = crash.stage1.pages.filter((p) => !present.has(p));
    expect(notSaved.length).toBe(crash.stage1.pages.length - truncatedPages);
    expect(d.missing).toEqual(notSaved);
    expect(indexMissing(r, 0)).toEqual(notSaved);
    expect(indexReasons(r, 0)).toEqual(['device']);
    const wrongPass = notSaved.filter((p) => crash.stage1.records.get(p)!.pass === DUMP_PASS_KERN || !(crash.snap.mask[Number(p)] & (DUMP_MASK_USED | DUMP_MASK_UNUSED))).map(hexs);
    expect(wrongPass).toEqual([]);
    const dump0 = path.join(r.dumpdir, '0', 'dump.0');
    expect(DUMP_HEADER_OFFSET + BigInt(fs.statSync(dump0).size)).toBeLessThanOrEqual(limit);
  });

  it('a retry without the fault (or on a device of full size) writes the whole dump; lkcd save saves it as a new complete dump', () => {
    if (c.kind === 'small') fs.truncateSync(r.dev, Number(fullSize));
    const out = lines(okRun('lkcd', r.dir, ['config']));
    expect(out, out.join('\n')).toHaveLength(3);
    const m = wroteLine(r, crash.stage1.addr, '').exec(out[0]);
    expect(m, out[0]).not.toBeNull();
    expect(Number(m![1])).toBe(crash.stage1.pages.length);
    // The held dump's block went with it: the driver is armed afresh.
    expectArmed(r, out, true);
    expect(expectSaved(r, 1, `device fault ${c.kind}`, 'complete').pages).toBe(crash.stage1.pages.length);
    expectVerified(r, 1, crash.stage1.pages.length, false);
    const d = readSaved(r, 1, crash.snap);
    expect(d.pages).toEqual(crash.stage1.pages);
    expect(d.differ).toEqual([]);
    expect(d.missing).toEqual([]);
    expect(listed(r).map((x) => [x.n, x.complete])).toEqual([[0, false], [1, true]]);
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      expect(pendingDump(sys.kernel)).toBeNull();
    } finally {
      closeSystem(sys);
    }
  });
});

describe('4. a panic after a writeout cut short (frames kept for the retry), before the retry', () => {
  let r: Root;
  let crash: HookedCrash;
  let second: string;

  beforeAll(() => {
    r = powerOnRoot('retry-panic', 'idle', 115);
    lkcdConfigArms(r);
    crash = crashWithHooks(r, 'first, cut short', {}, true, 'gzip');
    const [kern, user] = crash.stage1.passBytes;
    const limit = DUMP_HEADER_OFFSET + BigInt(DUMP_BUFFER_SIZE) + kern + user / 2n;
    const out = lines(degradedRun('lkcd', r.dir, ['config'], DEVICE_IO, ['failed during the writeout'], { LKCD_FAULT_DEVICE_EIO_FROM: String(limit) }));
    expect(out).toContain(`dump: the device could not hold the whole dump: its frames stay reserved in memory; run lkcd config again once ${r.dev} is mended or larger`);
    // The boot scripts save what the device holds (lkcd config; lkcd save), then the machine panics again.
    expectSaved(r, 0, 'first, cut short', `TRUNCATED (${/TRUNCATED: (\d+) pages missing/.exec(out[0])![1]} pages missing)`);
    second = okRun('machine', r.dir, ['panic', 'second, before the retry']);
  });

  it('the second panic\'s console names the dump still held in memory', () => {
    expect(second, second).toContain(crash.stage1.addr);
  });

  it('the first dump is still written out whole afterwards (lkcd config, lkcd save): every page equal to RAM before the first panic', () => {
    okRun('lkcd', r.dir, ['config']);
    okRun('lkcd', r.dir, ['save']);
    const whole = listed(r).filter((d) => d.panic_string === 'first, cut short' && d.complete);
    expect(whole.map((d) => d.n), JSON.stringify(listed(r).map((d) => [d.n, d.panic_string, d.complete]))).toHaveLength(1);
    const d = readSaved(r, whole[0].n, crash.snap);
    expect(d.pages).toEqual(crash.stage1.pages);
    expect(d.differ).toEqual([]);
  });
});

// ---- 5. DUMPDIR full during lkcd save ----------------------------------------------------

describe('5. DUMPDIR fills up during lkcd save (LKCD_FAULT_SAVE_ENOSPC_AFTER)', () => {
  let r: Root;
  let devSha: string;
  let entries: string[];
  let bounds: string;
  let failed: ReturnType<typeof runTool>;
  let pages: number;

  beforeAll(() => {
    r = powerOnRoot('enospc', 'idle', 107);
    lkcdConfigArms(r);
    okRun('machine', r.dir, ['panic', 'first, saved']);
    okRun('lkcd', r.dir, ['config']);
    expectSaved(r, 0, 'first, saved', 'complete');
    const p = okRun('machine', r.dir, ['panic', 'second, disk full']);
    pages = Number(/^dump: saved (\d+) pages/m.exec(p)![1]);
    const out = lines(okRun('lkcd', r.dir, ['config']));
    expect(out[0]).toMatch(wroteLine(r, '0x[0-9a-f]+', ''));
    devSha = sha256(r.dev);
    entries = dumpdirEntries(r);
    bounds = fs.readFileSync(path.join(r.dumpdir, 'bounds'), 'utf8');
    failed = runTool('lkcd', r.dir, ['save'], { LKCD_FAULT_SAVE_ENOSPC_AFTER: String(1 << 20) });
  });

  it('lkcd save exits 74 with one stderr line', () => {
    expect(failed.stdout).toBe('');
    expectCleanFailure(failed, 'lkcd', EX_IOERR, 'no space left on device');
  });

  it('the device dump stays unsaved and intact; no DUMPDIR/1, no leftover directory, bounds and index unchanged', () => {
    expect(sha256(r.dev)).toBe(devSha);
    expect(dumpdirEntries(r)).toEqual(entries);
    expect(fs.readFileSync(path.join(r.dumpdir, 'bounds'), 'utf8')).toBe(bounds);
    expect(bounds).toBe('1\n');
    expect(listed(r).map((d) => d.n)).toEqual([0]);
  });

  it('a later lkcd save saves it whole as dump 1', () => {
    expect(expectSaved(r, 1, 'second, disk full', 'complete').pages).toBe(pages);
    expectVerified(r, 1, pages, false);
    expect(fs.readFileSync(path.join(r.dumpdir, 'bounds'), 'utf8')).toBe('2\n');
    expect(listed(r).map((d) => [d.n, d.complete, d.panic_string])).toEqual([[0, true, 'first, saved'], [1, true, 'second, disk full']]);
  });
});

// ---- 6. stale, foreign and garbage devices; bad addresses and images ---------------------

describe('6a. a stale dump device (its dump already saved)', () => {
  let r: Root;

  beforeAll(() => {
    r = powerOnRoot('stale', 'idle', 108);
    lkcdConfigArms(r);
    okRun('machine', r.dir, ['panic', 'saved once']);
    okRun('lkcd', r.dir, ['config']);
    expectSaved(r, 0, 'saved once', 'complete');
  });

  it('a second lkcd save says it was already saved, and saves no duplicate', () => {
    const devSha = sha256(r.dev);
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: the dump on ${r.dev} was already saved as 0\n`);
    expect(sha256(r.dev)).toBe(devSha);
    expect(listed(r).map((d) => d.n)).toEqual([0]);
    expect(dumpdirEntries(r).filter((e) => /^\d+$/.test(e) || e.startsWith('.saving'))).toEqual(['0']);
    expect(fs.readFileSync(path.join(r.dumpdir, 'bounds'), 'utf8')).toBe('1\n');
  });

  it('with the saved mark lost, the identical dump is not taken for dump 0: it is saved as dump 1, same_as 0, then marked', () => {
    // Nothing on the device says this is the dump saved as 0: it may as well be another crash
    // that left byte-identical memory (issue 15). It is kept, and says which dump it matches.
    const fd = fs.openSync(r.dev, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
    fs.closeSync(fd);
    const out = lines(okRun('lkcd', r.dir, ['save']));
    expect(out[0]).toMatch(new RegExp(`^lkcd save: saved dump 1 to ${esc(path.join(r.dumpdir, '1'))}: \\d+ pages, \\d+ bytes, complete; panic "saved once"$`));
    expect(out.filter((l) => l.includes('byte-identical'))).toEqual([`lkcd save: dump 1 is byte-identical to dump 0 (same sha256), but the dump on ${r.dev} was not marked saved: another crash, kept as a dump of its own`]);
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: the dump on ${r.dev} was already saved as 1\n`);
    const rows = JSON.parse(okRun('lkcd', r.dir, ['list', '--json'])) as Array<{ n: number; sha256: string; same_as: number | null }>;
    expect(rows.map((d) => [d.n, d.same_as])).toEqual([[0, null], [1, 0]]);
    expect(rows[1].sha256).toBe(rows[0].sha256);
    expect(sha256(path.join(r.dumpdir, '1', 'dump.1'))).toBe(sha256(path.join(r.dumpdir, '0', 'dump.0')));
    expect(dumpdirEntries(r).filter((e) => /^\d+$/.test(e) || e.startsWith('.saving'))).toEqual(['0', '1']);
    expect(fs.readFileSync(path.join(r.dumpdir, 'bounds'), 'utf8')).toBe('2\n');
  });
});

describe('6b. a foreign and a garbage dump device', () => {
  let r: Root;

  beforeAll(() => {
    r = powerOnRoot('foreign', 'idle', 109);
    lkcdConfigArms(r);
  });

  const writeDev = (at: number, bytes: Buffer): void => {
    const fd = fs.openSync(r.dev, 'r+');
    fs.writeSync(fd, bytes, 0, bytes.length, at);
    fs.closeSync(fd);
  };

  it('a swap area (SWAPSPACE2 at 4086, zeros at 64K) holds no dump: lkcd save says so and changes nothing', () => {
    writeDev(0, Buffer.alloc(Number(DUMP_HEADER_OFFSET) + DUMP_BUFFER_SIZE));
    writeDev(4086, Buffer.from('SWAPSPACE2', 'latin1'));
    const devSha = sha256(r.dev);
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: no dump on ${r.dev}\n`);
    expect(sha256(r.dev)).toBe(devSha);
    expect(dumpdirEntries(r).filter((e) => /^\d+$/.test(e) || e === 'bounds' || e.startsWith('.saving'))).toEqual([]);
  });

  it('random bytes at 64K: lkcd save exits 65 with one line naming the device, and changes nothing', () => {
    writeDev(Number(DUMP_HEADER_OFFSET), crypto.createHash('sha512').update('garbage').digest());
    const devSha = sha256(r.dev);
    const res = runTool('lkcd', r.dir, ['save']);
    expect(res.stdout).toBe('');
    expectCleanFailure(res, 'lkcd', EX_DATAERR, r.dev, 'no LKCD dump', 'dh_magic_number');
    expect(sha256(r.dev)).toBe(devSha);
    expect(dumpdirEntries(r).filter((e) => /^\d+$/.test(e) || e === 'bounds' || e.startsWith('.saving'))).toEqual([]);
  });
});

describe('6c. a wrong crashdump= address (kexec -l ... crashdump=0x1234, kexec -e)', () => {
  let r: Root;
  let booted: string;

  beforeAll(() => {
    r = powerOnRoot('badaddr', 'idle', 110);
    lkcdConfigArms(r);
    okRun('kexec', r.dir, ['-l', r.image, `--command-line=${KEXEC_CMDLINE} crashdump=0x1234`]);
    booted = okRun('kexec', r.dir, ['-e']);
  });

  it('the kernel boots, logs one "Ignoring dump" line naming the address, and reserves nothing', () => {
    expect(booted).toBe(`kexec: booted ${r.release}\n`);
    expect(okRun('machine', r.dir, ['proc', 'cmdline'])).toBe(`${KEXEC_CMDLINE} crashdump=0x1234\n`);
    const log = okRun('machine', r.dir, ['dmesg']);
    expect(log.match(IGNORING) ?? [], log).toEqual([
      'crashdump: crashdump=0x1234 is not a direct-mapped address of this machine\'s RAM. Ignoring dump',
    ]);
    expect(okRun('machine', r.dir, ['proc', 'sys/kernel/dump/addr'])).toBe('0x0\n');
  });

  it('the machine runs normally: status, lkcd config arms, lkcd save finds no dump', () => {
    expect(okRun('machine', r.dir, ['status'])).toMatch(/^machine: +16M RAM/m);
    lkcdConfigArms(r);
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: no dump on ${r.dev}\n`);
  });
});

describe('6d. a dump config block whose checksum fails (a byte flipped in RAM before the kexec boot)', () => {
  let r: Root;
  let addr: string;

  beforeAll(() => {
    r = powerOnRoot('cksum', 'idle', 111);
    addr = lkcdConfigArms(r);
    // One byte of the block's panic string flips after stage 1 sealed it: its CRC32 no longer matches.
    crashWithHooks(r, 'block checksum', {
      beforeBoot: (sys, s) => {
        const at = s.blockPhys + BigInt(dump_config_block.offsetOf.panic_string);
        const b = sys.ram.read(at, 1);
        sys.ram.write(at, Buffer.from([b[0] ^ 0x01]));
      },
    }, false);
  });

  it('the boot logs one "Ignoring dump" line with the checksum reason, and reserves nothing', () => {
    const log = okRun('machine', r.dir, ['dmesg']);
    const ignoring = log.match(IGNORING) ?? [];
    expect(ignoring, log).toHaveLength(1);
    expect(ignoring[0]).toMatch(new RegExp(`^crashdump: invalid dump at ${addr}: dump config block checksum 0x[0-9a-f]+ does not match its contents \\(0x[0-9a-f]+\\)\\. Ignoring dump$`));
    const sys = openSystem(new MachineRoot(r.dir), { readOnly: true });
    try {
      expect(pendingDump(sys.kernel)).toBeNull();
      expect(systemDmesg(sys)).not.toMatch(/Dump may be available/);
    } finally {
      closeSystem(sys);
    }
  });

  it('lkcd config arms normally with nothing to write out; lkcd save finds no dump', () => {
    lkcdConfigArms(r);
    expect(okRun('lkcd', r.dir, ['save'])).toBe(`lkcd save: no dump on ${r.dev}\n`);
  });
});

describe('6e. a KEXEC_IMAGE that does not exist, with a dump pending', () => {
  let r: Root;
  let template: string;
  let failed: ReturnType<typeof runTool>;
  let restored: string[];
  let pages: number;

  beforeAll(() => {
    r = powerOnRoot('noimage', 'idle', 112);
    lkcdConfigArms(r);
    template = fs.readFileSync(path.join(r.dir, 'etc', 'sysconfig', 'dump'), 'utf8');
    pages = Number(/^dump: saved (\d+) pages/m.exec(okRun('machine', r.dir, ['panic', 'image gone']))![1]);
    fs.writeFileSync(path.join(r.dir, 'etc', 'sysconfig', 'dump'), template.replace(/^KEXEC_IMAGE=.*$/m, 'KEXEC_IMAGE=/boot/vmlinuz-nosuch'), { mode: 0o600 });
    failed = runTool('lkcd', r.dir, ['config']);
  });

  it('lkcd config exits 66 with one line naming KEXEC_IMAGE and the path', () => {
    expectCleanFailure(failed, 'lkcd', EX_NOINPUT, 'KEXEC_IMAGE', path.join(r.dir, 'boot', 'vmlinuz-nosuch'));
  });

  it('nothing is lost: with the image restored, lkcd config and lkcd save give the whole dump', () => {
    fs.writeFileSync(path.join(r.dir, 'etc', 'sysconfig', 'dump'), template, { mode: 0o600 });
    restored = lines(okRun('lkcd', r.dir, ['config']));
    expectArmed(r, restored, true);
    expect(expectSaved(r, 0, 'image gone', 'complete').pages).toBe(pages);
    expectVerified(r, 0, pages, false);
  });

  it('the writeout is reported once, by the lkcd config that did it', () => {
    // Either the failing run wrote the dump out (and must say so), or it left it pending for the run after it.
    const wrote = new RegExp(wroteLine(r, '0x[0-9a-f]+', '').source, 'm');
    const reports = [failed.stdout, restored.join('\n')].filter((out) => wrote.test(out));
    expect(reports, `failed run's stdout: '${failed.stdout}'; the next run's: '${restored.join('\n')}'`).toHaveLength(1);
  });
});

describe('6f. a corrupt kexec image (a truncated copy of boot/vmlinuz-*)', () => {
  let r: Root;
  let corrupt: string;
  let status: string;

  beforeAll(() => {
    r = powerOnRoot('badimage', 'idle', 113);
    lkcdConfigArms(r);
    status = okRun('kexec', r.dir, ['-s']);
    corrupt = path.join(r.dir, 'boot', 'vmlinuz-corrupt');
    const bytes = fs.readFileSync(r.image);
    fs.writeFileSync(corrupt, bytes.subarray(0, Math.floor(bytes.length / 2)));
  });

  it('kexec -l exits 65 with one line naming the file; the preloaded kernel stays loaded', () => {
    const res = runTool('kexec', r.dir, ['-l', corrupt, `--command-line=${KEXEC_CMDLINE}`]);
    expect(res.stdout).toBe('');
    expectCleanFailure(res, 'kexec', EX_DATAERR, corrupt);
    expect(okRun('kexec', r.dir, ['-s'])).toBe(status);
  });

  it('as KEXEC_IMAGE, lkcd config exits 65 with one line naming the file; the preloaded kernel stays loaded', () => {
    const conf = path.join(r.dir, 'etc', 'sysconfig', 'dump');
    fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace(/^KEXEC_IMAGE=.*$/m, 'KEXEC_IMAGE=/boot/vmlinuz-corrupt'), { mode: 0o600 });
    const res = runTool('lkcd', r.dir, ['config']);
    expectCleanFailure(res, 'lkcd', EX_DATAERR, corrupt);
    expect(okRun('kexec', r.dir, ['-s'])).toBe(status);
  });
});
