import { CorruptDumpError, InternalError, viewOf, type Struct } from '../codec/index.js';
import { LiveMemory, PhysicalRam, PAGE_SHIFT, type MachineState } from '../machine/index.js';
import { __START_KERNEL_map, PAGE_OFFSET } from './constants.js';
import { kallsyms_entry, lkcd_kernel_header, LKCD_KERNEL_MAGIC, type LkcdKernelHeader } from './structs/kernel_header.js';
import type { KernelSymbol, SymbolType } from './layout.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyStruct = Struct<any>;

/**
 * The running kernel, as seen from its own memory: found from the boot
 * CPU's entry address, its symbols read from the kallsyms table in RAM.
 * Every kernel variable is read and written in RAM through this object.
 */
export class Kernel {
  private readonly byName: Map<string, KernelSymbol>;

  constructor(
    readonly ram: PhysicalRam,
    readonly mem: LiveMemory,
    readonly header: LkcdKernelHeader,
    readonly symbols: KernelSymbol[],
    /**
     * phys_base: where the image runs minus where it was linked to run
     * (CONFIG_PHYSICAL_START). 0 for a kernel at its link address; a
     * capture kernel loaded into the crashkernel region runs relocated,
     * its virtual addresses unchanged, as a relocatable bzImage does.
     */
    readonly physBase: bigint = 0n,
  ) {
    this.byName = new Map(symbols.map((s) => [s.name, s]));
  }

  /** Opens the kernel the CPU is running: reads its header and kallsyms from RAM. */
  static open(ram: PhysicalRam, cpu: NonNullable<MachineState['cpu']>): Kernel {
    const header = readKernelHeader(ram, cpu.kernel_base);
    const physBase = cpu.kernel_base - header.physical_start;
    const count = header.kallsyms_count;
    if (count === 0 || count > 4096 || header.kallsyms_entry_size !== kallsyms_entry.size) {
      throw new CorruptDumpError(`kernel header at 0x${cpu.kernel_base.toString(16)}: bad kallsyms table (count ${count})`,
        { struct: 'lkcd_kernel_header', field: 'kallsyms_count', address: cpu.kernel_base });
    }
    const raw = ram.read(header.kallsyms_vaddr - __START_KERNEL_map + physBase, count * kallsyms_entry.size);
    const view = viewOf(raw);
    const symbols: KernelSymbol[] = [];
    for (let i = 0; i < count; i++) {
      const e = kallsyms_entry.decode(view, i * kallsyms_entry.size);
      symbols.push({ name: e.name, address: e.address, size: e.size, type: e.type as SymbolType });
    }
    return new Kernel(ram, new LiveMemory(ram, cpu.cr3), header, symbols, physBase);
  }

  get release(): string { return this.header.release; }
  get ramBytes(): bigint { return this.ram.size; }
  get maxPfn(): bigint { return this.ram.size >> BigInt(PAGE_SHIFT); }

  sym(name: string): KernelSymbol {
    const s = this.byName.get(name);
    if (!s) throw new InternalError(`kernel symbol ${name} is missing from kallsyms`);
    return s;
  }

  /** Physical address of a symbol in the kernel image (__pa_symbol). */
  symPhys(name: string): bigint {
    return this.sym(name).address - __START_KERNEL_map + this.physBase;
  }

  /** __pa() of this kernel: a kernel-text address (phys_base applies) or a direct-map one. */
  pa(vaddr: bigint): bigint {
    return vaddr >= __START_KERNEL_map ? vaddr - __START_KERNEL_map + this.physBase : vaddr - PAGE_OFFSET;
  }

  readBytes(name: string, offset = 0, length?: number): Buffer {
    const s = this.sym(name);
    return this.ram.read(this.symPhys(name) + BigInt(offset), length ?? Number(s.size) - offset);
  }
  writeBytes(name: string, data: Uint8Array, offset = 0): void {
    this.ram.write(this.symPhys(name) + BigInt(offset), data);
  }

  readU64(name: string): bigint { return this.readBytes(name, 0, 8).readBigUInt64LE(0); }
  writeU64(name: string, v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    this.writeBytes(name, b);
  }
  readU32(name: string): number { return this.readBytes(name, 0, 4).readUInt32LE(0); }
  writeU32(name: string, v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.writeBytes(name, b);
  }

  readStruct<S extends AnyStruct>(struct: S, name: string, offset = 0): ReturnType<S['decode']> {
    return struct.decode(viewOf(this.readBytes(name, offset, struct.size))) as ReturnType<S['decode']>;
  }
  writeStruct<S extends AnyStruct>(struct: S, name: string, value: ReturnType<S['decode']>, offset = 0): void {
    this.writeBytes(name, struct.toBytes(value), offset);
  }

  /** Reads a struct at a physical address. */
  readPhysStruct<S extends AnyStruct>(struct: S, paddr: bigint): ReturnType<S['decode']> {
    return struct.decode(viewOf(this.ram.read(paddr, struct.size))) as ReturnType<S['decode']>;
  }
  writePhysStruct<S extends AnyStruct>(struct: S, paddr: bigint, value: ReturnType<S['decode']>): void {
    this.ram.write(paddr, struct.toBytes(value));
  }

  /**
   * Kernel virtual address (either mapping) to physical, without a page
   * walk, for a kernel at its link address; the instance method pa()
   * also handles a relocated kernel's text addresses.
   */
  static __pa(vaddr: bigint): bigint {
    return vaddr >= __START_KERNEL_map ? vaddr - __START_KERNEL_map : vaddr - PAGE_OFFSET;
  }
  static __va(paddr: bigint): bigint {
    return paddr + PAGE_OFFSET;
  }

  /** Flushes RAM writes to the image. */
  flush(): void {
    this.ram.flush();
  }
}

/** Reads and checks the kernel header at the physical address of _text. */
export function readKernelHeader(ram: PhysicalRam, physStart: bigint): LkcdKernelHeader {
  const h = lkcd_kernel_header.decode(viewOf(ram.read(physStart, lkcd_kernel_header.size)));
  if (h.magic !== LKCD_KERNEL_MAGIC) {
    throw new CorruptDumpError(
      `no kernel image at physical 0x${physStart.toString(16)} (magic 0x${h.magic.toString(16)}): RAM does not hold a running kernel`,
      { struct: 'lkcd_kernel_header', field: 'magic', address: physStart, space: 'phys' });
  }
  return h;
}
