/**
 * Debuggers open our crashed kernels by name (issue 17): drgn, gdb and
 * crash, given the debug vmlinux the kernel build produced, read a live
 * export (`machine export-vmcore`) and a saved dump (`lkcd export --elf`).
 *
 * Truth comes from elsewhere than the debug info: the log from `machine
 * dmesg` / `lkcd dmesg`, the tasks from `machine ps`, the page counts from
 * `machine status --json`, and every struct page from the RAM file itself,
 * decoded here from the 5.4 layout of struct page (include/linux/mm_types.h:
 * flags 0, mapping 24, private 40, _mapcount 48, _refcount 52; 64 bytes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ok, run } from '../helpers/lkcd.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool, SYSTEM_PYTHON } from '../helpers/tools.js';

const SCRIPTS = path.join(path.dirname(new URL(import.meta.url).pathname), 'scripts');
const RELEASE = '5.4.0-lkcd';

// x86_64 facts, from the kernel headers, not from the code under test.
const START_KERNEL_MAP = 0xffffffff80000000n;
const PAGE_OFFSET = 0xffff888000000000n;
const STRUCT_PAGE = { size: 64, flags: 0, mapping: 24, private: 40, mapcount: 48, refcount: 52 };
const PG_lru = 4n;
const PG_slab = 9n;
const PG_reserved = 12n;
const PAGE_BUDDY_MAPCOUNT_VALUE = -129;
const PAGE_MAPPING_ANON = 1n;
/** CONFIG_HZ=250 (Debian) and INITIAL_JIFFIES = (unsigned int)(-300 * HZ). */
const HZ = 250n;
const INITIAL_JIFFIES = 0xfffedb08n;

interface RawPages { flags: bigint[]; refcount: number[]; mapcount: number[]; mapping: bigint[]; private: bigint[] }

interface DrgnFacts {
  release: string;
  dmesg: string;
  tasks: Array<[number, string, string, string]>;
  jiffies: number;
  totalram_pages: number;
  max_pfn: number;
  pages: { flags: string[]; refcount: number[]; mapcount: number[]; mapping: string[]; private: string[] };
}

/** System.map of the machine's build: name -> address. */
function systemMap(root: string): Map<string, bigint> {
  const map = new Map<string, bigint>();
  for (const line of fs.readFileSync(path.join(root, 'boot', `System.map-${RELEASE}`), 'latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) \S (\S+)$/.exec(line);
    if (m && !map.has(m[2])) map.set(m[2], BigInt(`0x${m[1]}`));
  }
  return map;
}

/** Every struct page, read from the RAM file through mem_map's value at its System.map address. */
function rawPagesFromRam(root: string): RawPages {
  const ram = fs.openSync(path.join(root, 'lib', 'machine', 'ram'), 'r');
  try {
    const syms = systemMap(root);
    const u64 = (phys: bigint): bigint => {
      const b = Buffer.alloc(8);
      fs.readSync(ram, b, 0, 8, Number(phys));
      return b.readBigUInt64LE(0);
    };
    const memMap = u64(syms.get('mem_map')! - START_KERNEL_MAP) - PAGE_OFFSET;
    const maxPfn = Number(u64(syms.get('max_pfn')! - START_KERNEL_MAP));
    const bytes = Buffer.alloc(maxPfn * STRUCT_PAGE.size);
    fs.readSync(ram, bytes, 0, bytes.length, Number(memMap));
    const out: RawPages = { flags: [], refcount: [], mapcount: [], mapping: [], private: [] };
    for (let pfn = 0; pfn < maxPfn; pfn++) {
      const at = pfn * STRUCT_PAGE.size;
      out.flags.push(bytes.readBigUInt64LE(at + STRUCT_PAGE.flags));
      out.mapping.push(bytes.readBigUInt64LE(at + STRUCT_PAGE.mapping));
      out.private.push(bytes.readBigUInt64LE(at + STRUCT_PAGE.private));
      out.mapcount.push(bytes.readInt32LE(at + STRUCT_PAGE.mapcount));
      out.refcount.push(bytes.readInt32LE(at + STRUCT_PAGE.refcount));
    }
    return out;
  } finally {
    fs.closeSync(ram);
  }
}

/**
 * Page types as mm/page_alloc.c and makedumpfile decide them: a buddy head
 * (_mapcount PAGE_BUDDY_MAPCOUNT_VALUE) frees 1 << private frames, then
 * PG_reserved, PG_slab, an anon mapping, a page-cache page (PG_lru with a
 * mapping), else kernel.
 */
function countTypes(p: RawPages): Record<string, number> {
  const c: Record<string, number> = { free: 0, reserved: 0, slab: 0, kernel: 0, cache: 0, anon: 0 };
  let freeUntil = 0;
  for (let pfn = 0; pfn < p.flags.length; pfn++) {
    const bit = (b: bigint): boolean => ((p.flags[pfn] >> b) & 1n) === 1n;
    if (pfn < freeUntil) { c.free++; continue; }
    if (p.mapcount[pfn] === PAGE_BUDDY_MAPCOUNT_VALUE && !bit(PG_slab)) {
      freeUntil = pfn + 2 ** Number(p.private[pfn]);
      c.free++;
    } else if (bit(PG_reserved)) c.reserved++;
    else if (bit(PG_slab)) c.slab++;
    else if (p.mapping[pfn] !== 0n && (p.mapping[pfn] & PAGE_MAPPING_ANON)) c.anon++;
    else if (p.mapping[pfn] !== 0n && bit(PG_lru)) c.cache++;
    else c.kernel++;
  }
  return c;
}

/** drgn's values as RawPages. */
function drgnPages(f: DrgnFacts): RawPages {
  return {
    flags: f.pages.flags.map((x) => BigInt(x)), refcount: f.pages.refcount, mapcount: f.pages.mapcount,
    mapping: f.pages.mapping.map((x) => BigInt(x)), private: f.pages.private.map((x) => BigInt(x)),
  };
}

interface PsRow { pid: number; state: string; task: bigint; comm: string }

/** `machine ps` rows: PID, ST, TASK, COMM ([comm] for kernel threads). */
function parsePs(text: string): PsRow[] {
  return text.trim().split('\n').slice(1).map((l) => {
    const m = /^\s*(\d+)\s+(\S+)\s+0x([0-9a-f]+)\s+(.*)$/.exec(l);
    if (!m) throw new Error(`machine ps line not understood: ${l}`);
    return { pid: Number(m[1]), state: m[2], task: BigInt(`0x${m[3]}`), comm: m[4].replace(/^\[(.*)\]$/, '$1') };
  });
}

/** ps's two-letter state as the letter of task_state_array ("S (sleeping)" ...). */
const STATE_LETTER: Record<string, string> = { RU: 'R', IN: 'S', UN: 'D', ST: 'T', DE: 'X' };

/** VMCOREINFO text of a vmcore, from `readelf -n`'s hex dump of the note's description. */
function vmcoreinfoByReadelf(vmcore: string): string {
  const r = runTool('readelf', ['-n', '-W', vmcore]);
  expect(r.status, r.stderr).toBe(0);
  const m = /VMCOREINFO\s+0x[0-9a-f]+\s+Unknown note type[^\n]*?\s+description data: ([0-9a-f ]+)/.exec(r.stdout);
  expect(m, r.stdout.slice(0, 400)).not.toBeNull();
  return Buffer.from(m![1].replace(/\s+/g, ''), 'hex').toString('latin1');
}

function buildIdByReadelf(file: string): string {
  const r = runTool('readelf', ['-n', '-W', file]);
  expect(r.status, r.stderr).toBe(0);
  const m = /Build ID: ([0-9a-f]+)/.exec(r.stdout);
  expect(m, `${file}: ${r.stdout}`).not.toBeNull();
  return m![1];
}

function drgnFacts(vmcore: string, vmlinux: string): DrgnFacts {
  const r = runTool(SYSTEM_PYTHON, [path.join(SCRIPTS, 'drgn_facts.py'), vmcore, vmlinux], 300);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as DrgnFacts;
}

/** gdb -batch on vmlinux + core: release, then comm and pid of the first two tasks after init_task. */
function gdbWalk(vmlinux: string, core: string): string {
  const task = (n: number): string => `((struct task_struct *)((char *)init_task.tasks${'.next'.repeat(n)} - (unsigned long)&((struct task_struct *)0)->tasks))`;
  const r = runTool('gdb', ['-batch', '-nx', '-ex', 'set print repeats 0', '-ex', 'p init_uts_ns.name.release',
    '-ex', `p ${task(1)}->pid`, '-ex', `p ${task(1)}->comm`, '-ex', `p ${task(2)}->pid`, '-ex', `p ${task(2)}->comm`,
    '-ex', 'p *init_task.tasks.next', vmlinux, core], 120);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** gdb prints char[16] "kthreadd" as "kthreadd\000\000..." with repeats off: the string up to the first NUL. */
function gdbStrings(out: string): Array<string | number> {
  return [...out.matchAll(/^\$\d+ = (?:"((?:[^"\\]|\\.)*)"|(-?\d+))/gm)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1].split('\\000')[0]));
}

const tools = needs('gcc', 'readelf');
const drgn = needs('python3:drgn');
const gdb = needs('gdb');
const crash = needs('crash');

let tmp = '';
let root = '';
let vmlinux = '';
let live: { vmcore: string; dmesg: string; ps: PsRow[]; status: { uptime_ns: number; pages: Record<string, number> }; raw: RawPages };
let saved: { elf: string; vmlinux: string; dmesg: string; ps: PsRow[]; status: { pages: Record<string, number> }; raw: RawPages; saveOut: string; show: string; showJson: Record<string, unknown> };

describe.skipIf(tools.skip)(`the debug vmlinux of a 64M machine${tools.reason}`, () => {
  beforeAll(() => {
    ensureBuilt();
    tmp = makeTempDir('vmlinux');
    root = path.join(tmp, 'root');
    // gcc is here: power-on says nothing on stderr.
    ok(run('machine', root, ['power-on', '--mem', '64M', '--profile', 'database', '--seed', '7']));
    ok(run('machine', root, ['run', '--seconds', '3']));
    vmlinux = path.join(root, 'boot', `vmlinux-${RELEASE}`);
    const vmcore = path.join(tmp, 'live.vmcore');
    ok(run('machine', root, ['export-vmcore', '-o', vmcore]));
    live = {
      vmcore, dmesg: ok(run('machine', root, ['dmesg'])), ps: parsePs(ok(run('machine', root, ['ps']))),
      status: JSON.parse(ok(run('machine', root, ['status', '--json']))), raw: rawPagesFromRam(root),
    };

    ok(run('lkcd', root, ['config']));
    // The crashed kernel's tasks, pages and counts: RAM just before the panic.
    const ps = parsePs(ok(run('machine', root, ['ps'])));
    const status = JSON.parse(ok(run('machine', root, ['status', '--json'])));
    const raw = rawPagesFromRam(root);
    ok(run('machine', root, ['panic', 'debug vmlinux test']));
    ok(run('lkcd', root, ['config']));
    const saveOut = ok(run('lkcd', root, ['save']));
    const elf = path.join(tmp, 'saved.elf');
    ok(run('lkcd', root, ['export', '0', '--elf', '-o', elf]));
    saved = {
      elf, vmlinux: path.join(root, 'log', 'dump', '0', 'vmlinux.0'), dmesg: ok(run('lkcd', root, ['dmesg', '0'])), ps, status, raw, saveOut,
      show: ok(run('lkcd', root, ['show', '0'])), showJson: JSON.parse(ok(run('lkcd', root, ['show', '0', '--json']))),
    };
  });

  afterAll(() => { if (tmp) removeTempDir(tmp); });

  it('the build writes boot/vmlinux-<release>: an ELF whose GNU build ID is the vmlinuz\'s and the one VMCOREINFO carries', () => {
    const id = buildIdByReadelf(vmlinux);
    expect(id).toMatch(/^[0-9a-f]{40}$/);
    expect(buildIdByReadelf(path.join(root, 'boot', `vmlinuz-${RELEASE}`))).toBe(id);
    expect(vmcoreinfoByReadelf(live.vmcore)).toContain(`\nBUILD-ID=${id}\n`);
    expect(vmcoreinfoByReadelf(saved.elf)).toContain(`\nBUILD-ID=${id}\n`);
  });

  it('lkcd save keeps vmlinux.N (0600, the same bytes) without a word; lkcd show says where it is and that it matches', () => {
    const id = buildIdByReadelf(vmlinux);
    // No line about vmlinux.N; the line after the first is the device dumps' (the machine has its three devices).
    expect(saved.saveOut).toMatch(/^lkcd save: saved dump 0 to .*; panic "debug vmlinux test"\n(lkcd save: dump 0 carries \d+ device dumps?, saved in .*\n)?$/);
    expect(fs.statSync(saved.vmlinux).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(saved.vmlinux).equals(fs.readFileSync(vmlinux))).toBe(true);
    expect(saved.show).toMatch(new RegExp(`^\\s+vmlinux: ${saved.vmlinux.replace(/[.]/g, '\\.')} \\(build ID ${id}, matches the dump\\)$`, 'm'));
    expect(saved.showJson.vmlinux).toEqual({ file: saved.vmlinux, build_id: id, dump_build_id: id, matches: true });
  });

  describe.skipIf(drgn.skip)(`drgn${drgn.reason}`, () => {
    const cases = (): Array<[string, string, string, string, PsRow[], Record<string, number>, RawPages]> => [
      ['machine export-vmcore', live.vmcore, vmlinux, live.dmesg, live.ps, live.status.pages, live.raw],
      ['lkcd export --elf of dump 0', saved.elf, saved.vmlinux, saved.dmesg, saved.ps, saved.status.pages, saved.raw],
    ];

    it('init_uts_ns.name.release is the release; get_dmesg() is exactly machine dmesg / lkcd dmesg', () => {
      for (const [what, core, vml, dmesg] of cases()) {
        const f = drgnFacts(core, vml);
        expect(f.release, what).toBe(RELEASE);
        expect(f.dmesg, what).toBe(dmesg);
        expect(dmesg.split('\n').length, what).toBeGreaterThan(20);
      }
    });

    it('for_each_task() gives the tasks of machine ps (every one but the idle task, which has no pid in the idr), with their states', () => {
      for (const [what, core, vml, , ps] of cases()) {
        const f = drgnFacts(core, vml);
        const want = ps.filter((t) => t.pid !== 0).map((t) => [t.pid, t.comm, STATE_LETTER[t.state], t.task]);
        expect(f.tasks.map(([pid, comm, state, addr]) => [pid, comm, state, BigInt(addr)]), what).toEqual(want);
        expect(ps[0].pid, what).toBe(0);
        expect(want.length, what).toBeGreaterThan(15);
      }
    });

    it('mem_map[pfn]: flags, _refcount, _mapcount, mapping, private of every pfn equal the RAM; their page types count as machine status does', () => {
      for (const [what, core, vml, , , counts, raw] of cases()) {
        const f = drgnFacts(core, vml);
        const got = drgnPages(f);
        expect(f.max_pfn, what).toBe(raw.flags.length);
        const bad: string[] = [];
        for (let pfn = 0; pfn < raw.flags.length; pfn++) {
          if (got.flags[pfn] !== raw.flags[pfn] || got.refcount[pfn] !== raw.refcount[pfn] || got.mapcount[pfn] !== raw.mapcount[pfn]
            || got.mapping[pfn] !== raw.mapping[pfn] || got.private[pfn] !== raw.private[pfn]) bad.push(`pfn ${pfn}`);
        }
        expect(bad.slice(0, 5), what).toEqual([]);
        const fromDrgn = countTypes(got);
        expect(fromDrgn, what).toEqual(countTypes(raw));
        const { total, ...byType } = counts;
        expect(fromDrgn, what).toEqual(byType);
        expect(total, what).toBe(f.max_pfn);
        for (const t of ['free', 'reserved', 'slab', 'kernel', 'cache', 'anon']) expect(fromDrgn[t], `${what} ${t}`).toBeGreaterThan(0);
      }
    });

    it('jiffies advance with the simulated clock from INITIAL_JIFFIES; _totalram_pages is what the boot reported', () => {
      const f = drgnFacts(live.vmcore, vmlinux);
      expect(BigInt(f.jiffies)).toBe(INITIAL_JIFFIES + (BigInt(live.status.uptime_ns) * HZ) / 1_000_000_000n);
      const m = /Memory: (\d+)K\/\d+K available/.exec(live.dmesg);
      expect(f.totalram_pages).toBe(Number(m![1]) / 4);
    });
  });

  describe.skipIf(gdb.skip)(`gdb${gdb.reason}`, () => {
    it('prints init_uts_ns.name.release and walks the first two tasks of machine ps, on both files', () => {
      for (const [what, core, vml, ps] of [['live', live.vmcore, vmlinux, live.ps], ['saved', saved.elf, saved.vmlinux, saved.ps]] as const) {
        const out = gdbWalk(vml, core);
        const values = gdbStrings(out);
        expect(values.slice(0, 5), `${what}:\n${out}`).toEqual([RELEASE, ps[1].pid, ps[1].comm, ps[2].pid, ps[2].comm]);
        // *init_task.tasks.next is a struct list_head whose prev points back into init_task.
        expect(out, what).toMatch(/= \{next = 0xffff888[0-9a-f]+, prev = 0xffffffff[0-9a-f]+ <init_task\+\d+>\}/);
      }
    });
  });

  describe.skipIf(crash.skip)(`crash${crash.reason}`, () => {
    it('a full session loads the vmlinux and stops where the simulated kernel has no scheduler run queues (README)', () => {
      const r = runTool('crash', ['-s', vmlinux, live.vmcore], 120, { input: 'sys\nquit\n' });
      expect(`${r.stdout}${r.stderr}`).toContain('crash: neither runqueue nor rq structures exist');
      expect(r.status).not.toBe(0);
    });

    it('crash --minimal reads the log, symbols and jiffies through the vmlinux', () => {
      const r = runTool('crash', ['-s', '--minimal', vmlinux, live.vmcore], 120, { input: 'log\nsym init_task\nrd -d jiffies\nquit\n' });
      expect(r.status, r.stderr).toBe(0);
      const ps0 = live.ps[0];
      expect(r.stdout).toContain(live.dmesg);
      expect(r.stdout).toContain(`${ps0.task.toString(16)} (D) init_task\n`);
      const jiffies = INITIAL_JIFFIES + (BigInt(live.status.uptime_ns) * HZ) / 1_000_000_000n;
      expect(r.stdout).toMatch(new RegExp(`^[0-9a-f]+:\\s+${jiffies}\\s*$`, 'm'));
    });
  });

  it('gdb on the vmlinux alone reads linux_banner from the image bytes the vmlinuz loads', { skip: gdb.skip }, () => {
    const r = runTool('gdb', ['-batch', '-nx', '-ex', 'x/s linux_banner', vmlinux]);
    expect(r.status, r.stderr).toBe(0);
    const banner = live.dmesg.split('\n')[0].replace(/^\[\s*\d+\.\d+\] /, '');
    expect(r.stdout).toContain(`<linux_banner>:\t"${banner}\\n"`);
  });

  it('vmlinux.0 replaced by another build\'s: lkcd show says it does NOT match, never a stale match', () => {
    // The saved vmlinux.0 replaced by one with another build ID (the 16M build's).
    const other = path.join(tmp, 'other');
    ok(run('machine', other, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '1']));
    fs.copyFileSync(path.join(other, 'boot', 'vmlinux-5.4.0-lkcd-lowmem'), saved.vmlinux);
    const show = ok(run('lkcd', root, ['show', '0']));
    expect(show).toMatch(/^\s+vmlinux: .*vmlinux\.0 \(build ID [0-9a-f]{40} does NOT match the dump's [0-9a-f]{40}\)$/m);
    fs.copyFileSync(vmlinux, saved.vmlinux);
  });
});
