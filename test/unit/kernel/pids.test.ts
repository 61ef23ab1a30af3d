/**
 * Pids as kernel/pid.c keeps them, read back with a decoder written here
 * from the xarray and struct pid facts (include/linux/xarray.h: a node is
 * 576 bytes, shift at 0, slots[64] at 40, a node pointer in a slot or the
 * head has bit 1 set; include/linux/pid.h v5.4: tasks[] at 8, numbers[0].nr
 * at 80, .ns at 88; pid_namespace: idr.idr_rt.xa_head at 16), not with the
 * code that wrote them. Also jiffies against the clock, and the build-ID
 * note parser against hand-made notes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BuddyAllocator, encodeBuildIdNote, findBuildId, Kernel, listTasks, MemMap, runWorkload, task_struct, type RunningSystem,
} from '../../../src/kernel/index.js';
import { SlabCache } from '../../../src/kernel/mm/slab.js';
import { XarrayWriter } from '../../../src/kernel/xarray.js';
import { MiB, powerOnTemp, type TempMachine } from '../../helpers/machine.js';

const XA_NODE = { shift: 0, parent: 8, slots: 40 };
const PID = { tasks: 8, nr: 80, ns: 88 };
const NS_XA_HEAD = 16;

function u64(sys: RunningSystem, va: bigint): bigint {
  return sys.ram.readU64(Kernel.__pa(va));
}

/** xa_load(), from the format: from the head, down one node per 6 bits of the index. */
function xaLoad(sys: RunningSystem, xa: bigint, index: number): bigint {
  const isNode = (e: bigint): boolean => (e & 3n) === 2n && e > 4096n;
  const shiftOf = (node: bigint): number => sys.ram.read(Kernel.__pa(node) + BigInt(XA_NODE.shift), 1)[0];
  let entry = u64(sys, xa + 8n);
  if (!isNode(entry)) return index === 0 ? entry : 0n;
  if (index >= 2 ** (shiftOf(entry - 2n) + 6)) return 0n;
  for (let depth = 0; depth < 8; depth++) {
    const node = entry - 2n;
    const shift = shiftOf(node);
    entry = u64(sys, node + BigInt(XA_NODE.slots + 8 * (Math.floor(index / 2 ** shift) & 63)));
    if (shift === 0) return entry;
    if (!isNode(entry)) return 0n;
  }
  throw new Error('xarray deeper than 8 levels');
}

let m: TempMachine;
beforeAll(() => { m = powerOnTemp({ mem: 64n * MiB, profile: 'database', seed: 3 }, 'pids'); });
afterAll(() => m?.destroy());

describe('pids', () => {
  it('every task but the idle task is in init_pid_ns.idr under its pid; struct pid and the task point at each other', () => {
    const { sys } = m;
    const k = sys.kernel;
    const ns = k.sym('init_pid_ns').address;
    const tasks = listTasks(k.mem, k.sym('init_task').address);
    expect(tasks.length).toBeGreaterThan(15);
    for (const t of tasks) {
      const link = t.address + BigInt(task_struct.offsetOf.pid_links);
      const pid = u64(sys, t.address + BigInt(task_struct.offsetOf.thread_pid));
      if (t.pid === 0) {
        expect(pid).toBe(k.sym('init_struct_pid').address);
        expect(xaLoad(sys, ns + BigInt(NS_XA_HEAD - 8), 0)).toBe(0n);
      } else {
        expect(xaLoad(sys, ns + BigInt(NS_XA_HEAD - 8), t.pid), `pid ${t.pid}`).toBe(pid);
      }
      expect(sys.ram.read(Kernel.__pa(pid) + BigInt(PID.nr), 4).readInt32LE(0)).toBe(t.pid);
      expect(u64(sys, pid + BigInt(PID.ns))).toBe(ns);
      // hlist: pid->tasks[PIDTYPE_PID].first is the task's pid_links[0], whose pprev points back at it.
      expect(u64(sys, pid + BigInt(PID.tasks))).toBe(link);
      expect(u64(sys, link)).toBe(0n);
      expect(u64(sys, link + 8n)).toBe(pid + BigInt(PID.tasks));
    }
    expect(xaLoad(sys, ns + BigInt(NS_XA_HEAD - 8), tasks.length + 5)).toBe(0n);
  });

  it('an xarray grows and descends for any index: each stored entry loads back, nothing else does', () => {
    const { sys } = m;
    const k = sys.kernel;
    const memmap = new MemMap(k);
    const buddy = new BuddyAllocator(k, memmap);
    const nodes = new SlabCache(k, memmap, { allocPages: (o, w) => buddy.allocOrThrow(o, w) }, 'radix_tree_node_cachep');
    // The xarray itself in a fresh page: lock, flags, head = NULL.
    const xa = Kernel.__va(buddy.allocOrThrow(0, 'test xarray') * 4096n);
    sys.ram.write(Kernel.__pa(xa), Buffer.alloc(16));
    const w = new XarrayWriter(k, xa, () => nodes.alloc());
    const indices = [0, 1, 5, 63, 64, 100, 4095, 4096, 262143, 262144, 70000, 2 ** 31];
    const entry = (i: number): bigint => 0xffff888000100000n + BigInt(i) * 8n;
    for (const i of indices) w.store(i, entry(i));
    for (const i of indices) expect(xaLoad(sys, xa, i), `index ${i}`).toBe(entry(i));
    for (const i of [2, 62, 65, 4097, 262145, 2 ** 31 - 1]) expect(xaLoad(sys, xa, i), `index ${i}`).toBe(0n);
    // The root covers 2^31: six levels of six bits.
    const root = u64(sys, xa + 8n) - 2n;
    expect(sys.ram.read(Kernel.__pa(root) + BigInt(XA_NODE.shift), 1)[0]).toBe(30);
    expect(u64(sys, root + BigInt(XA_NODE.parent))).toBe(0n);
    expect(() => w.store(3, 0xffff888000100001n)).toThrow(/not an aligned pointer/);
  });
});

describe('jiffies', () => {
  it('start at INITIAL_JIFFIES ((unsigned int)(-300 * HZ), HZ 250) and advance HZ a second with the clock', () => {
    const k = m.sys.kernel;
    const at = (): [bigint, bigint] => [k.readU64('jiffies'), k.readU64('sim_clock_ns')];
    const [j0, t0] = at();
    expect(j0).toBe(0xfffedb08n + (t0 * 250n) / 1_000_000_000n);
    runWorkload(m.sys, 4);
    const [j1, t1] = at();
    expect(t1 - t0).toBeGreaterThanOrEqual(4_000_000_000n);
    expect(j1).toBe(0xfffedb08n + (t1 * 250n) / 1_000_000_000n);
    expect(k.readU64('jiffies_64')).toBe(j1);
  });
});

describe('build-ID notes', () => {
  const id = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
  /** Elf64_Nhdr { namesz, descsz, type } then name and descriptor, each padded to 4 bytes (<elf.h>). */
  const note = (name: string, type: number, desc: Uint8Array): Buffer => {
    const n = Buffer.from(`${name}\0`, 'latin1');
    const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
    const h = Buffer.alloc(12);
    h.writeUInt32LE(n.length, 0);
    h.writeUInt32LE(desc.length, 4);
    h.writeUInt32LE(type, 8);
    return Buffer.concat([h, pad(n), pad(Buffer.from(desc))]);
  };

  it('encodes the NT_GNU_BUILD_ID note as ld writes it', () => {
    expect(Buffer.from(encodeBuildIdNote(id))).toEqual(note('GNU', 3, id));
  });

  it('finds the GNU build ID after other notes; an all-zero, truncated or foreign note is none', () => {
    expect(findBuildId(Buffer.concat([note('CORE', 1, new Uint8Array(8)), note('GNU', 3, id)]))).toEqual(id);
    expect(findBuildId(note('GNU', 3, new Uint8Array(20)))).toBeNull();
    expect(findBuildId(note('GNU', 3, id).subarray(0, 30))).toBeNull();
    expect(findBuildId(note('GNX', 3, id))).toBeNull();
    expect(findBuildId(note('GNU', 1, id))).toBeNull();
    const huge = note('GNU', 3, id);
    huge.writeUInt32LE(0xffffffff, 4);
    expect(findBuildId(huge)).toBeNull();
    expect(findBuildId(new Uint8Array(5))).toBeNull();
  });
});
