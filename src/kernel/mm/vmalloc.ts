/**
 * vmalloc for the simulated kernel: whole pages from the buddy allocator,
 * each on its own (no contiguity needed), mapped at consecutive addresses
 * of the vmalloc area (VMALLOC_START, 4-level paging) through 4 KiB page
 * table entries in this kernel's own page tables, with one unmapped guard
 * page after each area as vmalloc leaves one. Areas are handed out by a
 * bump pointer (vmalloc_next, ours: the kernel's vmap_area rbtree has no
 * equal here); freed areas are not reused. Reading an area goes through
 * the page tables, as the kernel does.
 */
import { InternalError, hex } from '../../codec/index.js';
import {
  __PAGE_KERNEL, _KERNPG_TABLE, PAGE_SIZE, PAGE_SIZE_N, PGDIR_SHIFT, PMD_SHIFT, PTE_PFN_MASK, PUD_SHIFT, _PAGE_PRESENT,
} from '../../machine/index.js';
import { PAGE_SHIFT } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import type { BuddyAllocator } from './buddy.js';

/** VMALLOC_START and VMALLOC_END with 4-level paging (arch/x86/include/asm/pgtable_64_types.h). */
export const VMALLOC_START = 0xffffc90000000000n;
export const VMALLOC_END = 0xffffe8ffffffffffn;

const index = (va: bigint, shift: number): bigint => (va >> BigInt(shift)) & 0x1ffn;

/** The next free vmalloc address (the first area starts at VMALLOC_START). */
function nextArea(kernel: Kernel): bigint {
  const v = kernel.readU64('vmalloc_next');
  return v === 0n ? VMALLOC_START : v;
}

/**
 * The table entry `idx` of the table at `table`: returns the table it
 * points to, making one (a zeroed page from the allocator) when absent.
 * null when no page is left for it.
 */
function tableAt(kernel: Kernel, buddy: BuddyAllocator, table: bigint, idx: bigint): bigint | null {
  const slot = table + idx * 8n;
  const e = kernel.ram.readU64(slot);
  if (e & _PAGE_PRESENT) return e & PTE_PFN_MASK;
  const pfn = buddy.alloc(0);
  if (pfn === null) return null;
  kernel.ram.zero(pfn * PAGE_SIZE_N, PAGE_SIZE);
  kernel.ram.writeU64(slot, (pfn * PAGE_SIZE_N) | _KERNPG_TABLE);
  return pfn * PAGE_SIZE_N;
}

/** Maps one page at `va` (4 KiB PTE); false when a page table could not be allocated. */
function mapPage(kernel: Kernel, buddy: BuddyAllocator, va: bigint, pfn: bigint): boolean {
  const pgd = kernel.mem.cr3 & PTE_PFN_MASK;
  const pud = tableAt(kernel, buddy, pgd, index(va, PGDIR_SHIFT));
  if (pud === null) return false;
  const pmd = tableAt(kernel, buddy, pud, index(va, PUD_SHIFT));
  if (pmd === null) return false;
  const pte = tableAt(kernel, buddy, pmd, index(va, PMD_SHIFT));
  if (pte === null) return false;
  kernel.ram.writeU64(pte + index(va, PAGE_SHIFT) * 8n, (pfn * PAGE_SIZE_N) | __PAGE_KERNEL);
  return true;
}

/** Clears the PTE of `va` (the tables above it stay, as vmalloc keeps them). */
function unmapPage(kernel: Kernel, va: bigint): void {
  let table = kernel.mem.cr3 & PTE_PFN_MASK;
  for (const shift of [PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT]) {
    const e = kernel.ram.readU64(table + index(va, shift) * 8n);
    if (!(e & _PAGE_PRESENT)) return;
    table = e & PTE_PFN_MASK;
  }
  kernel.ram.writeU64(table + index(va, PAGE_SHIFT) * 8n, 0n);
}

/**
 * vmalloc_user(size): zeroed pages mapped at a new area; its address, or
 * null when memory ran out (every page taken so far is given back).
 */
export function vmallocUser(kernel: Kernel, buddy: BuddyAllocator, bytes: number): bigint | null {
  if (!Number.isInteger(bytes) || bytes <= 0) throw new InternalError(`vmalloc of ${bytes} bytes`);
  const pages = Math.ceil(bytes / PAGE_SIZE);
  const va = nextArea(kernel);
  if (va + BigInt(pages + 1) * PAGE_SIZE_N - 1n > VMALLOC_END) return null;
  const taken: bigint[] = [];
  const giveBack = (): null => {
    for (let i = 0; i < taken.length; i++) unmapPage(kernel, va + BigInt(i) * PAGE_SIZE_N);
    for (const pfn of taken) buddy.free(pfn, 0);
    return null;
  };
  for (let i = 0; i < pages; i++) {
    const pfn = buddy.alloc(0);
    if (pfn === null) return giveBack();
    taken.push(pfn);
    if (!mapPage(kernel, buddy, va + BigInt(i) * PAGE_SIZE_N, pfn)) return giveBack();
    kernel.ram.zero(pfn * PAGE_SIZE_N, PAGE_SIZE);
  }
  // One guard page after the area stays unmapped.
  kernel.writeU64('vmalloc_next', va + BigInt(pages + 1) * PAGE_SIZE_N);
  return va;
}

/** vfree(): unmaps an area of `bytes` at `va` and frees its pages. */
export function vfree(kernel: Kernel, buddy: BuddyAllocator, va: bigint, bytes: number): void {
  if (va < VMALLOC_START || va > VMALLOC_END) throw new InternalError(`vfree of ${hex(va)}, outside the vmalloc area`);
  const pages = Math.ceil(bytes / PAGE_SIZE);
  for (let i = 0; i < pages; i++) {
    const at = va + BigInt(i) * PAGE_SIZE_N;
    const pa = kernel.mem.virtToPhys(at);
    unmapPage(kernel, at);
    buddy.free(pa / PAGE_SIZE_N, 0);
  }
}

/** True when `va` lies in the vmalloc area. */
export function isVmallocAddr(va: bigint): boolean {
  return va >= VMALLOC_START && va <= VMALLOC_END;
}
