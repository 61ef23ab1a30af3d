/**
 * Registration of firmware-assisted dump by the running kernel
 * (init_fadump_mem_struct, init_fadump_header, register_fadump,
 * register_fw_dump, fadump_unregister_dump, fadump_invalidate_dump,
 * fadump_register_store): the kernel tells the firmware what to preserve
 * and where, and writes the crash info header and the ELF core header
 * into its reserved area, ready for a crash.
 */
import { Elf64_Ehdr, Elf64_Phdr, UsageError, hex } from '../../codec/index.js';
import {
  FADUMP_CPU_STATE_DATA, FADUMP_FORMAT_VERSION, FADUMP_HPTE_REGION, FADUMP_INVALIDATE, FADUMP_REAL_MODE_REGION,
  FADUMP_REGISTER, FADUMP_REQUEST_FLAG, FADUMP_SECTIONS, FADUMP_UNREGISTER, fadump_mem_struct, PAGE_SIZE_N,
  RTAS_OUT_DUMP_ACTIVE, RTAS_OUT_DUMP_ALREADY_REGISTERED, RTAS_OUT_HW_ERROR, RTAS_OUT_PARAM_ERROR, RTAS_OUT_SUCCESS,
  usablePfnRanges, type FadumpMemStruct, type PlatformFirmware,
} from '../../machine/index.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO } from '../constants.js';
import { readE820 } from '../e820.js';
import type { Kernel } from '../kernel.js';
import { printk } from '../printk.js';
import { vmcoreinfoNoteLocation } from '../vmcoreinfo.js';
import { CPU_UNKNOWN, FADUMP_CRASH_INFO_MAGIC, RMA_START } from './constants.js';
import { fadumpCrashMemoryRanges, fadumpCreateElfcoreHeaders, kernelTextSize } from './elfcore.js';
import { fadumpMaxPhdrs } from './reserve.js';
import { dumpActive, dumpRegistered, fadumpEnabled, readFdm, readFwDump, setFwDumpFlag, writeFdm, writeFwDump } from './state.js';
import { fadump_crash_info_header, FW_DUMP_REGISTERED, type FwDump } from './structs.js';
import { pt_regs } from '../structs/pt_regs.js';
import { cpumask } from './structs.js';

/**
 * init_fadump_mem_struct(): the three sections, each requested, laid out
 * from `addr` (page aligned): CPU state data, HPTE region, the copy of
 * boot memory. Returns the address after them (where the crash info
 * header goes).
 */
export function initFadumpMemStruct(fw: FwDump, addr: bigint): { fdm: FadumpMemStruct; end: bigint } {
  let at = addr & ~(PAGE_SIZE_N - 1n);
  const fdm = fadump_mem_struct.zero();
  fdm.header = {
    ...fdm.header, dump_format_version: FADUMP_FORMAT_VERSION, dump_num_sections: FADUMP_SECTIONS.length,
    dump_status_flag: 0, offset_first_dump_section: fadump_mem_struct.offsetOf.cpu_state_data, max_time_auto: 0,
  };
  const section = (type: number, source: bigint, len: bigint): FadumpMemStruct['rmr_region'] => {
    const s = { request_flag: FADUMP_REQUEST_FLAG, source_data_type: type, error_flags: 0, source_address: source, source_len: len, bytes_dumped: 0n, destination_address: at };
    at += len;
    return s;
  };
  fdm.cpu_state_data = section(FADUMP_CPU_STATE_DATA, 0n, fw.cpu_state_data_size);
  fdm.hpte_region = section(FADUMP_HPTE_REGION, 0n, fw.hpte_region_size);
  fdm.rmr_region = section(FADUMP_REAL_MODE_REGION, RMA_START, fw.boot_memory_size);
  return { fdm, end: at };
}

/** How a registration failed: the errno a write to fadump_registered returns, and why. */
export interface FadumpRegisterError { errno: string; why: string }

/** register_fw_dump(): the RTAS call and what the kernel logs for its status; null when registered. */
function registerFwDump(kernel: Kernel, firmware: PlatformFirmware, fdm: FadumpMemStruct): FadumpRegisterError | null {
  const rc = firmware.configureKernelDump(FADUMP_REGISTER, fdm);
  switch (rc) {
    case RTAS_OUT_SUCCESS:
      printk(kernel, 'fadump: firmware-assisted kernel dump registration is successful', LOGLEVEL_INFO);
      setFwDumpFlag(kernel, FW_DUMP_REGISTERED, true);
      return null;
    case RTAS_OUT_DUMP_ALREADY_REGISTERED:
      printk(kernel, 'fadump: firmware-assisted kernel dump is already registered.', LOGLEVEL_ERR);
      setFwDumpFlag(kernel, FW_DUMP_REGISTERED, true);
      return { errno: 'File exists', why: 'the firmware says a dump is already registered' };
    case RTAS_OUT_PARAM_ERROR:
      printk(kernel, `fadump: Failed to register firmware-assisted kernel dump. Parameter Error(${rc}).`, LOGLEVEL_ERR);
      return { errno: 'Invalid argument', why: `the firmware refused the registration: parameter error (${rc})` };
    case RTAS_OUT_HW_ERROR:
      printk(kernel, `fadump: Failed to register firmware-assisted kernel dump. Hardware Error(${rc}).`, LOGLEVEL_ERR);
      return { errno: 'Input/output error', why: `the firmware refused the registration: hardware error (${rc})` };
    case RTAS_OUT_DUMP_ACTIVE:
    default:
      printk(kernel, `fadump: Failed to register. Unknown Error(${rc}).`, LOGLEVEL_ERR);
      return { errno: 'Input/output error', why: `the firmware refused the registration (status ${rc})` };
  }
}

/**
 * register_fadump(): crash memory ranges from the memory map, the crash
 * info header (FADMPINF, crashing_cpu CPU_UNKNOWN) right after the boot
 * memory copy, the ELF core header after it, then the RTAS call.
 */
export function registerFadump(kernel: Kernel, firmware: PlatformFirmware): FadumpRegisterError | null {
  const fw = readFwDump(kernel);
  if (fw.reserve_dump_area_size === 0n) return { errno: 'No such device', why: 'no memory is reserved for it (see machine dmesg: fadump)' };
  const fdm = readFdm(kernel, 'fdm');
  const area = { start: fw.reserve_dump_area_start, end: fw.reserve_dump_area_start + fw.reserve_dump_area_size };
  const memory = usablePfnRanges(readE820(kernel)).map(([s, e]) => ({ start: s * PAGE_SIZE_N, end: e * PAGE_SIZE_N }));
  const ranges = fadumpCrashMemoryRanges(memory, fw.boot_memory_size, area);
  const hdrAddr = fdm.rmr_region.destination_address + fdm.rmr_region.source_len;
  const elfAddr = hdrAddr + BigInt(fadump_crash_info_header.size);
  const text = kernel.sym('_text').address;
  const elf = fadumpCreateElfcoreHeaders({
    ranges, bootMemorySize: fw.boot_memory_size, bootMemoryDest: fdm.rmr_region.destination_address,
    vmcoreinfo: (() => { const v = vmcoreinfoNoteLocation(kernel); return { paddr: v.paddr, size: BigInt(v.size) }; })(),
    kernelText: { vaddr: text, paddr: kernel.symPhys('_text'), size: kernelTextSize(text, kernel.sym('_end').address) },
  });
  const phnum = (elf.length - Elf64_Ehdr.size) / Elf64_Phdr.size;
  if (elfAddr + BigInt(elf.length) > area.end || phnum > fadumpMaxPhdrs(memory.length)) {
    return { errno: 'Invalid argument', why: `the ELF core header of ${phnum} program headers does not fit the reserved area ending at ${hex(area.end)}` };
  }
  // init_fadump_header()
  kernel.writePhysStruct(fadump_crash_info_header, hdrAddr, {
    magic_number: FADUMP_CRASH_INFO_MAGIC, elfcorehdr_addr: elfAddr, crashing_cpu: CPU_UNKNOWN, _pad: 0,
    regs: pt_regs.zero(), online_mask: cpumask.zero(),
  });
  kernel.ram.write(elfAddr, elf);
  writeFwDump(kernel, { ...readFwDump(kernel), fadumphdr_addr: hdrAddr });
  return registerFwDump(kernel, firmware, fdm);
}

/** fadump_unregister_dump(). */
export function fadumpUnregisterDump(kernel: Kernel, firmware: PlatformFirmware): void {
  const rc = firmware.configureKernelDump(FADUMP_UNREGISTER, readFdm(kernel, 'fdm'));
  if (rc !== RTAS_OUT_SUCCESS) {
    printk(kernel, `fadump: Failed to un-register firmware-assisted dump. unexpected error(${rc}).`, LOGLEVEL_ERR);
    return;
  }
  setFwDumpFlag(kernel, FW_DUMP_REGISTERED, false);
}

/** fadump_invalidate_dump(): the firmware forgets the dump that waits. */
export function fadumpInvalidateDump(kernel: Kernel, firmware: PlatformFirmware, fdm: FadumpMemStruct): boolean {
  const rc = firmware.configureKernelDump(FADUMP_INVALIDATE, fdm);
  if (rc !== RTAS_OUT_SUCCESS) {
    printk(kernel, `fadump: Failed to invalidate firmware-assisted dump registration. Unexpected error (${rc}).`, LOGLEVEL_ERR);
    return false;
  }
  return true;
}

/**
 * fadump_register_store(): "1" registers, "0" unregisters; -EPERM when
 * fadump is not enabled or a dump is active (it must be released first),
 * -EEXIST when already registered, -EINVAL for anything else. Errors are
 * UsageErrors naming the file and the errno, as `echo` would report them.
 */
export function fadumpRegisteredStore(kernel: Kernel, firmware: PlatformFirmware | undefined, file: string, value: string): void {
  const fw = readFwDump(kernel);
  const fail = (errno: string, why: string): never => {
    throw new UsageError(`${file}: write error: ${errno} (${why})`);
  };
  if (!fadumpEnabled(fw)) fail('Operation not permitted', 'fadump is not enabled: boot with fadump=on');
  if (dumpActive(fw)) fail('Operation not permitted', 'a firmware-assisted dump is active: save /proc/vmcore, then echo 1 > /sys/kernel/fadump/release_mem');
  if (!firmware) fail('No such device', 'no firmware to register with');
  switch (value.trimStart()[0]) {
    case '0':
      if (dumpRegistered(fw)) fadumpUnregisterDump(kernel, firmware!);
      return;
    case '1': {
      if (dumpRegistered(fw)) fail('File exists', 'already registered');
      const r = registerFadump(kernel, firmware!);
      if (r) fail(r.errno, r.why);
      return;
    }
    default:
      fail('Invalid argument', `write 1 to register or 0 to unregister, not ${JSON.stringify(value.trim())}`);
  }
}

/** Writes fdm for a fresh registration from the reserved area (what setup_fadump() does when no dump is active). */
export function fadumpInitRegistration(kernel: Kernel): void {
  const fw = readFwDump(kernel);
  if (fw.reserve_dump_area_size === 0n) return;
  writeFdm(kernel, 'fdm', initFadumpMemStruct(fw, fw.reserve_dump_area_start).fdm);
}
