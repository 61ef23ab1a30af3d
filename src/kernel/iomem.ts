/**
 * /proc/iomem of the running kernel (kernel/resource.c r_show): the e820
 * ranges at the top level, the kernel image's code, rodata, data and bss
 * and the crashkernel region nested in the System RAM that holds them.
 * kexec-tools reads this file to find RAM and the "Crash kernel" region.
 */
import { e820TypeName, type E820Range } from '../machine/index.js';
import type { PhysRange } from './boot_layout.js';
import { crashkernelRegion } from './crashkernel.js';
import { readE820 } from './e820.js';
import type { Kernel } from './kernel.js';

export interface IomemResource {
  name: string;
  start: bigint;
  /** Inclusive, as struct resource keeps it. */
  end: bigint;
  children: IomemResource[];
}

/** The resource tree: e820 ranges with the kernel image and the crashkernel region below them. */
export function iomemResources(kernel: Kernel): IomemResource[] {
  const top = readE820(kernel).map((r: E820Range) => ({ name: e820TypeName(r.type), start: r.addr, end: r.addr + r.size - 1n, children: [] as IomemResource[] }));
  const child = (name: string, r: PhysRange): void => {
    const parent = top.find((t) => t.name === 'System RAM' && r.start >= t.start && r.end - 1n <= t.end);
    if (parent) parent.children.push({ name, start: r.start, end: r.end - 1n, children: [] });
  };
  const sym = (n: string): bigint => kernel.symPhys(n);
  child('Kernel code', { start: sym('_text'), end: sym('_etext') });
  child('Kernel rodata', { start: sym('__start_rodata'), end: sym('__end_rodata') });
  child('Kernel data', { start: sym('_sdata'), end: sym('_edata') });
  child('Kernel bss', { start: sym('__bss_start'), end: sym('__bss_stop') });
  const crash = crashkernelRegion(kernel);
  if (crash) child('Crash kernel', crash);
  for (const t of top) t.children.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return top;
}

/** The text of /proc/iomem: "%0*llx-%0*llx : %s", 8 digits at least, two spaces per level. */
export function iomemText(kernel: Kernel): string {
  const lines: string[] = [];
  const show = (r: IomemResource, depth: number): void => {
    lines.push(`${' '.repeat(depth * 2)}${r.start.toString(16).padStart(8, '0')}-${r.end.toString(16).padStart(8, '0')} : ${r.name}`);
    for (const c of r.children) show(c, depth + 1);
  };
  for (const r of iomemResources(kernel)) show(r, 0);
  return lines.map((l) => `${l}\n`).join('');
}
