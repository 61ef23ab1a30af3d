import {
  __PAGE_KERNEL_LARGE, _KERNPG_TABLE, PMD_SHIFT, PUD_SHIFT, PTRS_PER_TABLE,
} from '../machine/index.js';
import { __START_KERNEL_map, PAGE_OFFSET } from './constants.js';
import type { Kernel } from './kernel.js';

function index(vaddr: bigint, shift: number): number {
  return Number((vaddr >> BigInt(shift)) & 0x1ffn);
}

/**
 * Builds the kernel's 4-level page tables in its .bss, as head_64.S and
 * init_mem_mapping() leave them: the direct map of all RAM with 1 GiB pages
 * (PGD[273] -> level3_direct_map_pgt), and the kernel-text map of the first
 * GiB with 2 MiB pages (PGD[511] -> level3_kernel_pgt[510] -> level2_kernel_pgt),
 * shifted by phys_base for a relocated kernel (__START_KERNEL_map + x maps
 * phys_base + x, as head_64.S fixes up level2_kernel_pgt).
 * Returns CR3: the physical address of init_top_pgt.
 */
export function buildPageTables(kernel: Kernel, ramBytes: bigint): bigint {
  const pgd = kernel.symPhys('init_top_pgt');
  const pudKernel = kernel.symPhys('level3_kernel_pgt');
  const pmdKernel = kernel.symPhys('level2_kernel_pgt');
  const pudDirect = kernel.symPhys('level3_direct_map_pgt');
  for (const t of [pgd, pudKernel, pmdKernel, pudDirect]) kernel.ram.zero(t, 4096);
  const ram = kernel.ram;
  ram.writeU64(pgd + BigInt(index(PAGE_OFFSET, 39) * 8), pudDirect | _KERNPG_TABLE);
  ram.writeU64(pgd + BigInt(index(__START_KERNEL_map, 39) * 8), pudKernel | _KERNPG_TABLE);
  ram.writeU64(pudKernel + BigInt(index(__START_KERNEL_map, PUD_SHIFT) * 8), pmdKernel | _KERNPG_TABLE);
  const gib = 1n << BigInt(PUD_SHIFT);
  for (let g = 0n; g * gib < ramBytes && g < BigInt(PTRS_PER_TABLE); g++) {
    ram.writeU64(pudDirect + g * 8n, (g * gib) | __PAGE_KERNEL_LARGE);
  }
  const mib2 = 1n << BigInt(PMD_SHIFT);
  for (let i = 0n; kernel.physBase + i * mib2 < ramBytes && i < BigInt(PTRS_PER_TABLE); i++) {
    ram.writeU64(pmdKernel + i * 8n, (kernel.physBase + i * mib2) | __PAGE_KERNEL_LARGE);
  }
  return pgd;
}
