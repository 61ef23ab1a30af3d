/**
 * What a vmcore's ELF notes say, for the ELF and kdump-compressed readers:
 * the VMCOREINFO text and its keys, and each CPU's NT_PRSTATUS registers
 * (libkdumpfile notes.c: VMCOREINFO, CORE/PRSTATUS; others ignored).
 */
import {
  NT_PRSTATUS, NT_VMCOREDD, parseElfNotes, elf_prstatus, TruncatedError, VMCOREDD_MAX_NAME_BYTES, VMCOREDD_NOTE_NAME, viewOf, type ElfNote,
} from '../../codec/index.js';
import type { DeviceDumpEntry } from './types.js';
import { PT_REGS_TO_USER_REGS } from '../../kernel/crash_core.js';
import { pt_regs, type PtRegs } from '../../kernel/structs/pt_regs.js';

export interface VmcoreNotes {
  notes: ElfNote[];
  /** The VMCOREINFO text, or null when there is none. */
  vmcoreinfo: string | null;
  /** Registers of each NT_PRSTATUS note, in note order, with its pr_pid. */
  prstatus: Array<{ pid: number; regs: PtRegs }>;
  /** The device dumps (LINUX NT_VMCOREDD notes), in note order: dump_name, then the data, as crash reads them. */
  vmcoredd: DeviceDumpEntry[];
}

export function readVmcoreNotes(bytes: Uint8Array, what: string): VmcoreNotes {
  const notes = parseElfNotes(bytes, what);
  let vmcoreinfo: string | null = null;
  const prstatus: VmcoreNotes['prstatus'] = [];
  const vmcoredd: DeviceDumpEntry[] = [];
  for (const n of notes) {
    if (n.name === VMCOREDD_NOTE_NAME && n.type === NT_VMCOREDD) {
      if (n.desc.length < VMCOREDD_MAX_NAME_BYTES) throw new TruncatedError(`${what}: NT_VMCOREDD of ${n.desc.length} bytes, shorter than its dump_name`, { struct: 'vmcoredd_header', field: 'dump_name' });
      const raw = n.desc.subarray(0, VMCOREDD_MAX_NAME_BYTES);
      const nul = raw.indexOf(0);
      const data = n.desc.subarray(VMCOREDD_MAX_NAME_BYTES);
      vmcoredd.push({ name: Buffer.from(raw.subarray(0, nul < 0 ? raw.length : nul)).toString('latin1'), size: data.length, data: () => data });
    }
    if (n.name === 'VMCOREINFO' && n.type === 0) vmcoreinfo = Buffer.from(n.desc).toString('latin1');
    if (n.name === 'CORE' && n.type === NT_PRSTATUS) {
      if (n.desc.length < elf_prstatus.size) {
        throw new TruncatedError(`${what}: NT_PRSTATUS of ${n.desc.length} bytes, expected ${elf_prstatus.size}`, { struct: 'elf_prstatus' });
      }
      const pr = elf_prstatus.decode(viewOf(n.desc));
      const regs = pt_regs.zero();
      for (const [k, user] of Object.entries(PT_REGS_TO_USER_REGS) as Array<[keyof PtRegs, keyof typeof pr.pr_reg]>) regs[k] = pr.pr_reg[user];
      prstatus.push({ pid: pr.pr_pid, regs });
    }
  }
  return { notes, vmcoreinfo, prstatus, vmcoredd };
}

/** The KEY=VALUE lines of a VMCOREINFO text (first of duplicates wins, as makedumpfile reads them). */
export function vmcoreinfoKeys(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !out.has(line.slice(0, eq))) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}
