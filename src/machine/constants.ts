/** Architectural constants of x86_64 (4-level paging, 4 KiB base pages). */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_SIZE_N = BigInt(PAGE_SIZE);
export const PAGE_MASK = ~(PAGE_SIZE_N - 1n);

export const PMD_SHIFT = 21;
export const PUD_SHIFT = 30;
export const PGDIR_SHIFT = 39;
export const PTRS_PER_TABLE = 512;

export const _PAGE_PRESENT = 0x001n;
export const _PAGE_RW = 0x002n;
export const _PAGE_USER = 0x004n;
export const _PAGE_ACCESSED = 0x020n;
export const _PAGE_DIRTY = 0x040n;
export const _PAGE_PSE = 0x080n;
export const _PAGE_GLOBAL = 0x100n;
export const _PAGE_NX = 1n << 63n;
/** Bits 12..51 of a table entry hold the physical frame address. */
export const PTE_PFN_MASK = 0x000ffffffffff000n;

export const _KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** A 4 KiB kernel data page (PAGE_KERNEL): present, writable, global, not executable. */
export const __PAGE_KERNEL = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_GLOBAL | _PAGE_NX;
export const __PAGE_KERNEL_LARGE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_PSE | _PAGE_GLOBAL;

export function pfnToPhys(pfn: bigint): bigint {
  return pfn << BigInt(PAGE_SHIFT);
}
export function physToPfn(paddr: bigint): bigint {
  return paddr >> BigInt(PAGE_SHIFT);
}
