/**
 * Every walk over a chain read from RAM has a bound and names what it
 * found broken (issue 8: the kexec list walk had no bound on a cycle;
 * DESIGN's lessons: "walks without bounds"). Each chain is broken in RAM
 * the way a stray write would break it (a cycle, a pointer outside RAM, a
 * list that never ends), and the walk must end at once with a
 * CorruptDumpError naming the structure, never loop. The kexec list is
 * also broken under `machine panic`, which must end with one line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptDumpError } from '../../../src/codec/index.js';
import { MachineRoot } from '../../../src/machine/index.js';
import {
  BuddyAllocator, closeSystem, IND_FLAGS, IND_INDIRECTION, kexecFrames, kexecLoaded, Kernel, MemMap, openSystem, printk,
  readLogRecords, logSymbolsOf,
} from '../../../src/kernel/index.js';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_KERN, nextKernelConfig } from '../../../src/dump/index.js';
import { loadKexec } from '../../helpers/softboot.js';
import { makeTempDir, powerOnTemp, MiB, removeTempDir, type TempMachine } from '../../helpers/machine.js';
import { cleanFailure, ensureBuilt, EX_DATAERR, ok, powerOnScenario, run } from '../../helpers/lkcd.js';

let m: TempMachine;
beforeAll(() => {
  m = powerOnTemp({ mem: 16n * MiB, profile: 'idle', seed: 61 }, 'walks');
  loadKexec(m.sys, 'root=/dev/vda1 ro');
  m.sys.ram.commit();
});
afterAll(() => m?.destroy());

/** Runs `fn` with the u64 `writes` made in RAM, then puts the old values back. */
function withBroken<T>(writes: Array<[bigint, bigint]>, fn: () => T): T {
  const ram = m.sys.ram;
  const saved = writes.map(([addr]) => [addr, ram.readU64(addr)] as [bigint, bigint]);
  for (const [addr, v] of writes) ram.writeU64(addr, v);
  try {
    return fn();
  } finally {
    for (const [addr, v] of saved) ram.writeU64(addr, v);
  }
}

function corrupt(fn: () => unknown): CorruptDumpError {
  const t0 = performance.now();
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(performance.now() - t0, 'the walk ends at once').toBeLessThan(5000);
  expect(err).toBeInstanceOf(CorruptDumpError);
  return err as CorruptDumpError;
}

describe('the kexec indirection list', () => {
  const head = (): bigint => kexecLoaded(m.sys.kernel)!.image.head & ~IND_FLAGS;

  it('is walked whole when intact', () => {
    expect(kexecFrames(m.sys.kernel).length).toBeGreaterThan(10);
  });

  it('a list page that points back to itself: a cycle, named', () => {
    const e = corrupt(() => withBroken([[head() + 8n, head() | IND_INDIRECTION]], () => kexecFrames(m.sys.kernel)));
    expect(e.message).toMatch(/kexec indirection list: list page 0x[0-9a-f]+ comes back \(a cycle\)/);
    // The crash path's walk (readFirstSourcePage) uses the same bounded walker.
    const e2 = corrupt(() => withBroken([[head(), head() | IND_INDIRECTION]], () => nextKernelConfig(m.sys.kernel)));
    expect(e2.message).toMatch(/a cycle/);
  });

  it('an indirection or source page outside RAM, named with its address', () => {
    const e = corrupt(() => withBroken([[head() + 16n, (1n << 40n) | IND_INDIRECTION]], () => kexecFrames(m.sys.kernel)));
    expect(e.message).toBe('kexec indirection list: list page 0x10000000000 is not a page inside RAM');
  });

  it('a list page with neither IND_INDIRECTION nor IND_DONE: bounded by the page', () => {
    // Zero entries from the first slot on: no flag ever ends or chains the page.
    const writes: Array<[bigint, bigint]> = [];
    for (let i = 0n; i < 512n; i++) writes.push([head() + i * 8n, 0n]);
    const e = corrupt(() => withBroken(writes, () => kexecFrames(m.sys.kernel)));
    expect(e.message).toMatch(/has no IND_INDIRECTION or IND_DONE in its 512 entries/);
  });

  it('machine panic with the list broken ends with one line naming it (exit 65), no hang', () => {
    ensureBuilt();
    const dir = makeTempDir('walks-panic');
    try {
      powerOnScenario(dir, { mem: 16n * MiB, profile: 'idle', seed: 62, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP });
      ok(run('lkcd', dir, ['config']));
      const sys = openSystem(new MachineRoot(dir));
      const h = kexecLoaded(sys.kernel)!.image.head & ~IND_FLAGS;
      sys.ram.writeU64(h + 8n, h | IND_INDIRECTION);
      closeSystem(sys);
      cleanFailure(run('machine', dir, ['panic', 'broken list']), 'machine', EX_DATAERR, 'kexec indirection list', 'a cycle');
    } finally {
      removeTempDir(dir);
    }
  });
});

describe('the printk log', () => {
  it('a record chain that never frees room (a zero length at the start, sequence numbers far apart): printk stops, naming it', () => {
    const k = m.sys.kernel;
    const bufPhys = k.symPhys('__log_buf');
    const first = k.readU64('log_first_seq');
    expect(k.symPhys('log_next_idx')).toBe(k.symPhys('log_first_idx') + 4n);
    const e = corrupt(() => withBroken([
      [k.symPhys('log_first_idx'), 0n], // log_first_idx = log_next_idx = 0: a full buffer, no room
      [k.symPhys('log_next_seq'), first + (1n << 40n)],
      [bufPhys, 0n], // the record at log_buf+0: ts_nsec 0 ...
      [bufPhys + 8n, 0n], // ... and len 0: the wrap marker, whose next record is itself
    ], () => printk(k, 'one more line')));
    expect(e.message).toMatch(/^printk: /);
    expect(e.where.struct).toBe('printk_log');
  });

  it('readers stop too: log_next_seq far past what log_buf_len holds is refused before any walk', () => {
    const k = m.sys.kernel;
    const first = k.readU64('log_first_seq');
    const e = corrupt(() => withBroken([[k.symPhys('log_next_seq'), first + (1n << 40n)]], () => readLogRecords(k.mem, logSymbolsOf(k))));
    expect(e.message).toMatch(/cannot fit in log_buf_len/);
  });
});

describe('the buddy free lists', () => {
  /** free_area[order].free_list's head (physical address of list_head.next) and its first entry. */
  const firstEntry = (order: number): { head: bigint; entry: bigint } => {
    const buddy = new BuddyAllocator(m.sys.kernel, new MemMap(m.sys.kernel));
    const head = buddy.headVirt(order) - 0xffffffff80000000n; // __START_KERNEL_map: the list head is in the kernel image
    return { head, entry: m.sys.ram.readU64(head) };
  };

  it('a free block whose lru.next points at itself: the list does not come back, named', () => {
    const buddy = new BuddyAllocator(m.sys.kernel, new MemMap(m.sys.kernel));
    const order = buddy.freeBlocks().map(([, o]) => o).sort((a, b) => b - a)[0];
    const { entry } = firstEntry(order);
    const e = corrupt(() => withBroken([[Kernel.__pa(entry), entry]], () => buddy.freeBlocks()));
    expect(e.message).toMatch(new RegExp(`^free_area\\[${order}\\]\\.free_list: more than the \\d+ blocks of order ${order}`));
  });

  it('a list head pointing outside mem_map: named with the address', () => {
    const buddy = new BuddyAllocator(m.sys.kernel, new MemMap(m.sys.kernel));
    const order = buddy.freeBlocks()[0][1];
    const { head } = firstEntry(order);
    const e = corrupt(() => withBroken([[head, 0xffff888000000008n]], () => buddy.freeBlocks()));
    expect(e.message).toMatch(new RegExp(`^free_area\\[${order}\\]\\.free_list: entry 0xffff888000000008 is not the lru of a struct page in mem_map`));
  });
});
