import { FaultError } from '../codec/index.js';
import {
  _PAGE_PRESENT, _PAGE_PSE, PTE_PFN_MASK, PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT,
} from './constants.js';

/** Reads one 64-bit little-endian word at a physical address. */
export type PhysWordReader = (paddr: bigint) => bigint;

export interface Translation {
  paddr: bigint;
  /** Size of the page that mapped the address: 4 KiB, 2 MiB or 1 GiB. */
  pageSize: bigint;
  /** Table entries visited, PGD first, for tracing a walk in tests. */
  entries: bigint[];
}

const INDEX_MASK = 0x1ffn;

/**
 * Walks x86_64 4-level page tables from CR3 (the physical address of the
 * PGD). A pure function of cr3, the address and the physical reader:
 * PGD -> PUD (1 GiB PSE) -> PMD (2 MiB PSE) -> PTE.
 */
export function translate(cr3: bigint, vaddr: bigint, readPhys: PhysWordReader): Translation {
  const levels: Array<{ shift: number; name: string; leafAllowed: boolean }> = [
    { shift: PGDIR_SHIFT, name: 'PGD', leafAllowed: false },
    { shift: PUD_SHIFT, name: 'PUD', leafAllowed: true },
    { shift: PMD_SHIFT, name: 'PMD', leafAllowed: true },
    { shift: PAGE_SHIFT, name: 'PTE', leafAllowed: true },
  ];
  let table = cr3 & PTE_PFN_MASK;
  const entries: bigint[] = [];
  for (const level of levels) {
    const index = (vaddr >> BigInt(level.shift)) & INDEX_MASK;
    const entry = readPhys(table + index * 8n);
    entries.push(entry);
    if ((entry & _PAGE_PRESENT) === 0n) {
      throw new FaultError(`virtual address 0x${vaddr.toString(16)} is not mapped (${level.name}[${index}] not present)`,
        { address: vaddr, space: 'virt' });
    }
    const isLeaf = level.shift === PAGE_SHIFT || (level.leafAllowed && (entry & _PAGE_PSE) !== 0n);
    if (isLeaf) {
      const pageSize = 1n << BigInt(level.shift);
      const base = entry & PTE_PFN_MASK & ~(pageSize - 1n);
      return { paddr: base | (vaddr & (pageSize - 1n)), pageSize, entries };
    }
    table = entry & PTE_PFN_MASK;
  }
  /* c8 ignore next */
  throw new FaultError(`virtual address 0x${vaddr.toString(16)}: page walk did not end`, { address: vaddr, space: 'virt' });
}
