import { __START_KERNEL_map } from '../constants.js';
import type { VmlinuxPlan } from './plan.js';

const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/**
 * The linker script of a vmlinux: one output section per part of the
 * image at its address (LMA = physical, as arch/x86/kernel/vmlinux.lds.S
 * puts it), each input section at its System.map offset (ld refuses to move
 * the location counter backwards, so overlaps fail the link), the build-ID
 * note in .notes, a placeholder .init.text, and an ASSERT of every symbol's
 * address.
 */
export function vmlinuxLinkerScript(plan: VmlinuxPlan): string {
  const { textVaddr } = plan.layout;
  const vaddr = (off: number): bigint => textVaddr + BigInt(off);
  const out: string[] = [
    'OUTPUT_FORMAT("elf64-x86-64", "elf64-x86-64", "elf64-x86-64")',
    'OUTPUT_ARCH(i386:x86-64)',
    `phys_startup_64 = ${hex(vaddr(0) - __START_KERNEL_map)};`,
    'ENTRY(phys_startup_64)',
    'PHDRS {',
    '\ttext PT_LOAD FLAGS(5);',
    '\tdata PT_LOAD FLAGS(6);',
    '\tnote PT_NOTE FLAGS(4);',
    '}',
    'SECTIONS {',
  ];
  const absolute: string[] = [];
  for (const sec of plan.sections) {
    // Markers first where they share an offset with content: they name its start.
    const items: Array<{ offset: number; marker: boolean; line: string }> = [];
    if (sec.name === '.notes') items.push({ offset: 0, marker: false, line: 'KEEP(*(.note.gnu.build-id))' });
    for (const p of plan.placements) {
      if ((p.kind === 'variable' || p.kind === 'function') && p.section === sec) {
        items.push({ offset: p.offset, marker: false, line: `KEEP(*(${p.input}))` });
      } else if (p.kind === 'marker' && p.section === sec) {
        items.push({ offset: p.offset, marker: true, line: `${p.sym.name} = .;` });
      }
    }
    items.sort((a, b) => a.offset - b.offset || Number(b.marker) - Number(a.marker));
    const phdrs = sec.name === '.notes' ? ':text :note' : `:${sec.segment}`;
    out.push(`\t${sec.name} ${hex(vaddr(sec.start))}${sec.nobits ? ' (NOLOAD)' : ''} : AT(${hex(vaddr(sec.start) - __START_KERNEL_map)}) {`);
    for (const it of items) out.push(`\t\t. = ${hex(it.offset)};`, `\t\t${it.line}`);
    if (sec.name !== '.notes') out.push(`\t\t. = ${hex(sec.size)};`);
    out.push(`\t} ${phdrs}`);
  }
  for (const p of plan.placements) {
    if (p.kind === 'marker' && p.section === null) absolute.push(`${p.sym.name} = ${hex(p.sym.address)};`);
    if (p.kind === 'alias') absolute.push(`${p.sym.name} = ${p.target};`);
  }
  const end = plan.sections[plan.sections.length - 1];
  out.push(
    // A one-byte NOBITS .init.text past _end, in no segment: the image has no init code, but drgn
    // (linux_kernel.c identify_kernel_elf) knows a vmlinux by a section of that name, and ld drops
    // an empty one.
    `\t.init.text ${hex(vaddr(end.start + end.size))} (NOLOAD) : AT(${hex(vaddr(end.start + end.size) - __START_KERNEL_map)}) { . = . + 1; } :NONE`,
    '\t/DISCARD/ : { *(.comment) *(.note.GNU-stack) *(.note.gnu.property) *(.eh_frame) *(.eh_frame_hdr) }',
    '}',
    ...absolute,
  );
  for (const p of plan.placements) {
    if (p.kind === 'marker' && p.section === null) continue;
    out.push(`ASSERT(${p.sym.name} == ${hex(p.sym.address)}, "${p.sym.name} is not at its System.map address")`);
  }
  return out.join('\n') + '\n';
}
