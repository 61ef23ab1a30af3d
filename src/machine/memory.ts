import { FaultError, type AddressSpace } from '../codec/index.js';
import { translate } from './paging.js';
import type { PhysicalRam } from './ram.js';
import { PAGE_SIZE_N } from './constants.js';

/** Reads exactly `length` bytes, or throws FaultError carrying the first missing address. */
export interface MemoryReader {
  read(space: AddressSpace, address: bigint, length: number): Uint8Array;
}

/** A MemoryReader that can also write (the running machine). */
export interface MemoryWriter extends MemoryReader {
  write(space: AddressSpace, address: bigint, data: Uint8Array): void;
}

/**
 * Splits a virtual access at page boundaries, since neighbouring virtual
 * pages need not be physically contiguous.
 */
function forEachPagePiece(address: bigint, length: number, fn: (va: bigint, done: number, n: number) => void): void {
  let done = 0;
  while (done < length) {
    const va = address + BigInt(done);
    const room = Number(PAGE_SIZE_N - (va % PAGE_SIZE_N));
    const n = Math.min(room, length - done);
    fn(va, done, n);
    done += n;
  }
}

/** The running machine's memory: physical RAM, and virtual through the page tables at `cr3`. */
export class LiveMemory implements MemoryWriter {
  constructor(readonly ram: PhysicalRam, readonly cr3: bigint) {}

  virtToPhys(vaddr: bigint): bigint {
    return translate(this.cr3, vaddr, (pa) => this.ram.readU64(pa)).paddr;
  }

  read(space: AddressSpace, address: bigint, length: number): Uint8Array {
    if (space === 'phys') return this.ram.read(address, length);
    const out = Buffer.allocUnsafe(length);
    forEachPagePiece(address, length, (va, done, n) => {
      this.ram.readInto(this.virtToPhys(va), out.subarray(done, done + n));
    });
    return out;
  }

  write(space: AddressSpace, address: bigint, data: Uint8Array): void {
    if (space === 'phys') { this.ram.write(address, data); return; }
    forEachPagePiece(address, data.length, (va, done, n) => {
      this.ram.write(this.virtToPhys(va), data.subarray(done, done + n));
    });
  }
}

/** Test memory made of physical segments, with optional page tables for virtual reads. */
export class SegmentMemory implements MemoryReader {
  constructor(readonly segments: ReadonlyArray<{ phys: bigint; bytes: Uint8Array }>, readonly cr3?: bigint) {}

  private readPhys(address: bigint, length: number): Uint8Array {
    for (const s of this.segments) {
      const end = s.phys + BigInt(s.bytes.length);
      if (address >= s.phys && address + BigInt(length) <= end) {
        const off = Number(address - s.phys);
        return s.bytes.slice(off, off + length);
      }
    }
    throw new FaultError(`physical address 0x${address.toString(16)} is not in any segment`, { address, space: 'phys' });
  }

  read(space: AddressSpace, address: bigint, length: number): Uint8Array {
    if (space === 'phys') return this.readPhys(address, length);
    if (this.cr3 === undefined) throw new FaultError('no page tables for a virtual read', { address, space });
    const out = new Uint8Array(length);
    forEachPagePiece(address, length, (va, done, n) => {
      const pa = translate(this.cr3!, va, (p) => Buffer.from(this.readPhys(p, 8)).readBigUInt64LE(0)).paddr;
      out.set(this.readPhys(pa, n), done);
    });
    return out;
  }
}
