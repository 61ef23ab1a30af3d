import { PAGE_OFFSET, readVmcoreinfo, type RunningSystem } from '../kernel/index.js';
import { writeVmcore, type VmcoreResult } from './elf/index.js';

/**
 * Exports the running machine's RAM as an ELF vmcore, laid out as a kdump
 * /proc/vmcore is: PT_NOTE first, a PT_LOAD for the kernel-text mapping of
 * the image (where the printk symbols live, for crash --log), then the
 * direct map of all RAM.
 */
export function exportLiveVmcore(sys: RunningSystem, file: string, onProgress?: (done: bigint, total: bigint) => void): VmcoreResult {
  const { kernel, ram } = sys;
  const imageStart = kernel.header.physical_start + kernel.physBase;
  return writeVmcore(file, {
    loads: [
      { vaddr: kernel.header.text_vaddr, paddr: imageStart, size: kernel.header.image_size },
      { vaddr: PAGE_OFFSET, paddr: 0n, size: ram.size },
    ],
    vmcoreinfo: readVmcoreinfo(kernel),
    prstatus: [{ pid: 0, regs: { rip: kernel.sym('do_idle').address, cs: 0x10n, ss: 0x18n, eflags: 0x246n } }],
    readPhys: (paddr, out) => ram.readInto(paddr, out),
    onProgress,
    // Never over the RAM image it reads, nor any other file the machine lives on.
    protect: sys.root.outputProtected(),
  });
}
